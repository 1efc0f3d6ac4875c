package subscription

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// TestCompiledFiltersMatch: filters compile once, for each type they apply
// to, and match the way the backport IG reads them (AND across filters).
func TestCompiledFiltersMatch(t *testing.T) {
	t.Parallel()
	tp, err := topic.Parse([]byte(`{"resourceType":"SubscriptionTopic","id":"x","url":"https://example.org/x","status":"active",
		"resourceTrigger":[{"resource":"Encounter","supportedInteraction":["create"]},{"resource":"Patient","supportedInteraction":["update"]}],
		"canFilterBy":[{"resource":"Encounter","filterParameter":"patient"},{"resource":"Encounter","filterParameter":"class"},
			{"resource":"Patient","filterParameter":"patient"}]}`))
	require.NoError(t, err)
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
		{[]string{"Encounter.patient=Patient/p1", "Encounter.class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"}, "Encounter", enc, true},
		{[]string{"Encounter?patient=Patient/p1", "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP"}, "Encounter", enc, false},
		{[]string{"Encounter?patient=Patient/p1,Patient/p9"}, "Encounter", enc, true},
		{[]string{"Patient?patient=Patient/p2"}, "Encounter", enc, true},
		{[]string{"Patient?patient=Patient/p1"}, "Patient", pat, true},
		{[]string{"Patient?patient=Patient/p2"}, "Patient", pat, false},
	}
	for _, c := range cases {
		sub, err := compile(store.SubscriptionState{ID: "s", Topic: tp.URL, Filters: c.filters}, tp)
		require.NoError(t, err, "%v", c.filters)
		require.Equal(t, c.want, sub.Matches(c.typ, c.r, nil), "%v on %s", c.filters, c.typ)
	}
	for _, bad := range [][]string{{"garbage"}, {"Observation?patient=Patient/p1"}, {"Encounter?status=finished"}} {
		_, err := compile(store.SubscriptionState{ID: "s", Topic: tp.URL, Filters: bad}, tp)
		require.Error(t, err, "%v", bad)
	}
}
