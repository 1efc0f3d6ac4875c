package search

import "testing"

func TestReferences(t *testing.T) {
	for _, tc := range []struct {
		file, param string
		want        []string
	}{
		{"Encounter-f201", "patient", []string{"Patient/f201"}},
		{"Encounter-f201", "subject", []string{"Patient/f201"}},
		{"Encounter-f201", "practitioner", []string{"Practitioner/f201"}},
		{"Observation-f001", "patient", []string{"Patient/f001"}},
		{"Observation-blood-pressure", "patient", []string{"Patient/example"}},
		// participant.actor.where(resolve() is Patient): only the Patient actor.
		{"Appointment-example", "patient", []string{"Patient/example"}},
		{"Appointment-example", "actor", []string{"Location/1", "Patient/example", "Practitioner/example"}},
		{"Patient-example", "patient", nil}, // no such parameter on Patient
		{"Patient-example", "organization", []string{"Organization/1"}},
		{"Encounter-f201", "status", nil}, // not a reference parameter
		{"Encounter-f201", "no-such-param", nil},
	} {
		got := load(t, tc.file).References(tc.param)
		if !equalStrings(got, tc.want) {
			t.Errorf("%s %s: got %q, want %q", tc.file, tc.param, got, tc.want)
		}
	}
}

func TestReferencesNormalises(t *testing.T) {
	r, err := NewResource([]byte(`{"resourceType":"Appointment","participant":[
	 {"actor":{"reference":"https://other.example/fhir/Patient/a/_history/3"}},
	 {"actor":{"reference":"Patient/b"}},
	 {"actor":{"reference":"Patient/b"}},
	 {"actor":{"reference":"#contained"}},
	 {"actor":{"reference":"c","type":"Patient"}},
	 {"actor":{"identifier":{"system":"s","value":"v"},"type":"Patient"}},
	 {"actor":{"reference":"Practitioner/p"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Patient/b"} // another server's Patient/a is not local
	if got := r.References("patient"); !equalStrings(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The invariant the publisher's index relies on: a typed clause matches
	// only resources whose References hold its value.
	for _, v := range []string{"Patient/a", "Patient/b", "Patient/c", "https://x.example/Patient/a"} {
		c, err := ParseCriteria("Appointment", "patient="+v)
		if err != nil {
			t.Fatal(err)
		}
		ok, _ := c.Match(r)
		_, typ, id, _ := splitRef(v)
		in := false
		for _, g := range want {
			in = in || g == typ+"/"+id
		}
		if ok != in && v != "https://x.example/Patient/a" {
			t.Errorf("%s: match %v, in References %v", v, ok, in)
		}
		if ok && !in {
			t.Errorf("%s matches but is not in References", v)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
