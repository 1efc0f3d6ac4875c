package r4

import (
	"os"
	"slices"
	"testing"

	"github.com/herald-fhir/herald/internal/strictjson"
)

var issueTypes = []string{"structure", "required", "value", "code-invalid", "invalid"}

// FuzzValidate: Validate never panics, reports at most MaxProblems, each with
// an expression and a known issue type, and gives the same answer twice.
func FuzzValidate(f *testing.F) {
	for _, file := range exampleFiles(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, m := range mutations {
		f.Add(mutate(f, m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := strictjson.Parse(data)
		if err != nil {
			return
		}
		ps := Validate(v)
		if len(ps) > MaxProblems {
			t.Fatalf("%d problems", len(ps))
		}
		for _, p := range ps {
			if p.Expression == "" || p.Message == "" || !slices.Contains(issueTypes, p.Code) {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		if again := Validate(v); !slices.Equal(again, ps) {
			t.Fatalf("two answers: %v then %v", ps, again)
		}
	})
}
