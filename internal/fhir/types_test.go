package fhir

import "testing"

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "Patient-1.v2": true, "a..b": true, ".a": true, "0123456789012345678901234567890123456789012345678901234567890123": true,
		"": false, ".": false, "..": false, "...": false, "a/b": false, "a b": false, "ä": false, "a_b": false,
		"01234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
