package search

import (
	"testing"
)

// FuzzParseCriteria parses arbitrary criteria; whatever parses must match
// without error or panic against real resources and survive a String round
// trip.
func FuzzParseCriteria(f *testing.F) {
	for _, s := range []string{
		"Encounter?patient=Patient/123",
		"Encounter?status:not=finished",
		"Encounter?status=finished,in-progress&patient=Patient/example",
		"Observation?code=http://loinc.org|15074-8&value-quantity=gt6|http://unitsofmeasure.org|mmol/L",
		"Observation?date=ge2013-04-02T09:30:10+01:00&category=vital-signs",
		"Patient?name:exact=Chalmers&birthdate=sa1974&_lastUpdated=lt2020",
		`Patient?family=Smith\,%20Jr&identifier:of-type=http://x|MR|1`,
		"DocumentReference?location:below=http://example.org/&contenttype=application/hl7-v3+xml",
		"Condition?onset-age=ap50||a&_security:missing=false",
		"Appointment?actor:Patient=example&date=2013-12",
	} {
		f.Add(s)
	}
	rs := make([]*Resource, 0, 4)
	for _, name := range []string{"Encounter-example", "Observation-f001", "Patient-example", "Condition-f202"} {
		rs = append(rs, load(f, name))
	}
	f.Fuzz(func(t *testing.T, q string) {
		c, err := ParseQualified(q)
		if err != nil {
			return
		}
		for _, r := range rs {
			if _, err := c.Match(r); err != nil {
				t.Fatalf("%q: Match: %v", q, err)
			}
		}
		s := c.String()
		c2, err := ParseQualified(s)
		if err != nil {
			t.Fatalf("%q: String() = %q does not parse: %v", q, s, err)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("%q: String() not stable: %q then %q", q, s, s2)
		}
		for _, cl := range c.Clauses() {
			cl.ReferenceKeys()
			cl.Comparators()
		}
	})
}
