package fhir

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestAttackCompactEqualsJSONCompact: over random JSON whose strings are
// runs of backslashes, quotes, spaces and escapes, appendCompactJSON is
// encoding/json's Compact.
func TestAttackCompactEqualsJSONCompact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	atoms := []string{`\\`, `\"`, ` `, `a`, `\n`, `\u0022`, `\u005c`, `\/`, "\t", "é"}
	for range 20000 {
		var src bytes.Buffer
		src.WriteString("{ ")
		for i := range 1 + rng.IntN(4) {
			if i > 0 {
				src.WriteString(" ,\n ")
			}
			src.WriteString(`"k` + string(rune('a'+i)) + `" : `)
			if rng.IntN(3) == 0 {
				src.WriteString("[ 1 , \"\\\\\" , { } ]")
				continue
			}
			src.WriteByte('"')
			for range rng.IntN(8) {
				s := atoms[rng.IntN(len(atoms))]
				if s == "\t" {
					s = `\t`
				}
				src.WriteString(s)
			}
			src.WriteByte('"')
		}
		src.WriteString(" }")
		if !json.Valid(src.Bytes()) {
			t.Fatalf("generator: %q", src.String())
		}
		var want bytes.Buffer
		if err := json.Compact(&want, src.Bytes()); err != nil {
			t.Fatal(err)
		}
		got := appendCompactJSON([]byte("prefix"), src.Bytes())
		if string(got) != "prefix"+want.String() {
			t.Fatalf("%q:\n got %q\nwant %q", src.String(), got, want.String())
		}
	}
}
