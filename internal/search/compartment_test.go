package search

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCompartmentParametersAreSupported: a compartment parameter the
// search table could not evaluate would silently leave resources out of a
// compartment (and let a patient token write into another's): every one
// must be a supported reference parameter.
func TestCompartmentParametersAreSupported(t *testing.T) {
	t.Parallel()
	require.NotEmpty(t, patientCompartment)
	for typ, codes := range patientCompartment {
		for _, code := range codes {
			p := lookup(typ, code)
			require.NotNil(t, p, "%s.%s", typ, code)
			require.Equal(t, TypeReference, p.Type, "%s.%s", typ, code)
			require.True(t, p.Supported(), "%s.%s", typ, code)
		}
	}
}

func TestPatientCompartment(t *testing.T) {
	t.Parallel()
	const base = "https://herald.example/fhir"
	cases := []struct {
		resource string
		want     []string
	}{
		{`{"resourceType":"Patient","id":"p1"}`, []string{"p1"}},
		{`{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p9"},"type":"seealso"}]}`, []string{"p1", "p9"}},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/pA"},"performer":[{"reference":"Patient/pB"}]}`, []string{"pA", "pB"}},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/pA"},"performer":[{"reference":"Practitioner/d1"}]}`, []string{"pA"}},
		{`{"resourceType":"Observation","subject":{"reference":"https://other.example/fhir/Patient/pA"}}`, nil},
		{`{"resourceType":"Observation","subject":{"reference":"` + base + `/Patient/pA"}}`, []string{"pA"}},
		{`{"resourceType":"Condition","subject":{"reference":"Patient/pA"},"asserter":{"reference":"Patient/pB"}}`, []string{"pA", "pB"}},
		{`{"resourceType":"Encounter","subject":{"reference":"Patient/pA"}}`, []string{"pA"}},
		{`{"resourceType":"Practitioner","id":"d1"}`, nil},
		{`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p2/_history/3"}}`, []string{"p2"}},
		{`{"resourceType":"Observation","subject":{"reference":"https://herald.example/fhir/../fhir/Patient/p3"}}`, nil},
		{`{"resourceType":"Observation","subject":{"reference":"https://herald.example/fhirx/Patient/p3"}}`, nil},
		{`{"resourceType":"Observation","subject":{"reference":"HTTPS://HERALD.EXAMPLE/fhir/Patient/p3"}}`, []string{"p3"}},
		{`{"resourceType":"Observation","subject":{"reference":"Group/g1"}}`, nil},
		{`{"resourceType":"Observation","subject":"Patient/p1"}`, nil},
	}
	for _, c := range cases {
		r, err := NewResource([]byte(c.resource))
		require.NoError(t, err)
		require.ElementsMatch(t, c.want, PatientCompartment(r.WithBase(base)), c.resource)
	}
}
