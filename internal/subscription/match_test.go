package subscription

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
)

func TestMatchFilters(t *testing.T) {
	t.Parallel()
	enc, err := search.NewResource([]byte(`{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`))
	require.NoError(t, err)
	pat, err := search.NewResource([]byte(`{"resourceType":"Patient","id":"p1"}`))
	require.NoError(t, err)
	cases := []struct {
		filters []string
		typ     string
		r       *search.Resource
		want    bool
	}{
		{nil, "Encounter", enc, true},
		{[]string{"Encounter?patient=Patient/p1"}, "Encounter", enc, true},
		{[]string{"Encounter?patient=Patient/p2"}, "Encounter", enc, false},
		{[]string{"patient=Patient/p1"}, "Encounter", enc, true},
		{[]string{"Encounter.patient=Patient/p1", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"}, "Encounter", enc, true},
		{[]string{"patient=Patient/p1", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP"}, "Encounter", enc, false},
		{[]string{"Encounter?patient=Patient/p1,Patient/p9"}, "Encounter", enc, true},
		{[]string{"Observation?patient=Patient/p2"}, "Encounter", enc, true},
		{[]string{"Patient?patient=Patient/p1"}, "Patient", pat, true},
		{[]string{"patient=Patient/p2"}, "Patient", pat, false},
		{[]string{"garbage"}, "Encounter", enc, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, MatchFilters(c.filters, c.typ, c.r), "%v on %s", c.filters, c.typ)
	}
}
