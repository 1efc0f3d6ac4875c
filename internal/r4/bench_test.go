package r4

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-fhir/herald/internal/strictjson"
)

func BenchmarkValidatePatient(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(examplesDir, "Patient-example.json"))
	if err != nil {
		b.Fatal(err)
	}
	benchmarkValidate(b, raw)
}

// BenchmarkValidateTransaction: a ~30 KB transaction Bundle of Observations.
func BenchmarkValidateTransaction(b *testing.B) {
	benchmarkValidate(b, observationTransaction(b, 30<<10))
}

func benchmarkValidate(b *testing.B, raw []byte) {
	v, err := strictjson.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	if ps := Validate(v); len(ps) > 0 {
		b.Fatalf("invalid: %v", ps)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		Validate(v)
	}
}

// observationTransaction wraps the Observation examples, in order, as POST
// entries until the Bundle is at least size bytes.
func observationTransaction(tb testing.TB, size int) []byte {
	var entries []json.RawMessage
	total := 0
	for total < size {
		for _, f := range exampleFiles(tb) {
			if !strings.HasPrefix(filepath.Base(f), "Observation-") || total >= size {
				continue
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			entry := `{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":` + string(raw) +
				`,"request":{"method":"POST","url":"Observation"}}`
			entries = append(entries, json.RawMessage(entry))
			total += len(entry)
		}
	}
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}
