package search

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func mustParse(b *testing.B, q string) *Criteria {
	b.Helper()
	c, err := ParseQualified(q)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkMatch(b *testing.B) {
	enc := load(b, "Encounter-example")
	obs := load(b, "Observation-f001")
	pat := load(b, "Patient-example")
	for _, bc := range []struct {
		name string
		r    *Resource
		q    string
	}{
		{"token", enc, "Encounter?status=in-progress"},
		{"token-not", enc, "Encounter?status:not=finished"},
		{"reference", enc, "Encounter?patient=Patient/example"},
		{"codeableconcept", obs, "Observation?code=http://loinc.org|15074-8"},
		{"quantity", obs, "Observation?value-quantity=gt6|http://unitsofmeasure.org|mmol/L"},
		{"date-period", obs, "Observation?date=ge2013-04-02"},
		{"string-name", pat, "Patient?name=jim"},
		{"and-3", obs, "Observation?patient=Patient/f001&code=http://loinc.org|15074-8&status=final"},
	} {
		c := mustParse(b, bc.q)
		if ok, _ := c.Match(bc.r); !ok {
			b.Fatalf("%s does not match", bc.q)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Match(bc.r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	// One notification: decode the resource once, test 100 subscriptions'
	// criteria (a mix of patient filters and status/code criteria).
	raw, err := os.ReadFile(filepath.Join("testdata", "Observation-f001.json"))
	if err != nil {
		b.Fatal(err)
	}
	var many []*Criteria
	for i := range 100 {
		var q string
		switch i % 4 {
		case 0:
			q = fmt.Sprintf("Observation?patient=Patient/p%d", i)
		case 1:
			q = "Observation?status:not=final"
		case 2:
			q = fmt.Sprintf("Observation?code=http://loinc.org|%d-8&patient=Patient/f001", i)
		default:
			q = fmt.Sprintf("Observation?category=laboratory&date=ge20%02d", i%30)
		}
		many = append(many, mustParse(b, q))
	}
	b.Run("parse-once+100-criteria", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := NewResource(raw)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range many {
				if _, err := c.Match(r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("100-criteria-preparsed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range many {
				if _, err := c.Match(obs); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func BenchmarkParseCriteria(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQualified("Encounter?patient=Patient/123&status:not=finished"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCandidate is what a search costs per candidate the store hands
// the matcher: decode the stored body, then match. "client" is the strict
// reading a client's body gets; "stored" the one stored bodies get.
func BenchmarkCandidate(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "Observation-f001.json"))
	if err != nil {
		b.Fatal(err)
	}
	c := mustParse(b, "Observation?code=http://loinc.org|15074-8&date=ge2013-04-02")
	for _, bc := range []struct {
		name string
		read func([]byte) (*Resource, error)
	}{{"client", NewResource}, {"stored", NewStoredResource}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := bc.read(raw)
				if err != nil {
					b.Fatal(err)
				}
				if ok, _ := c.Match(r); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}
