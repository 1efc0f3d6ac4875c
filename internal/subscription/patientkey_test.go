package subscription

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/topic"
)

func topicOn(t *testing.T, types ...string) *topic.Topic {
	t.Helper()
	body := `{"resourceType":"SubscriptionTopic","id":"x","url":"https://example.org/x","status":"active","resourceTrigger":[`
	for i, typ := range types {
		if i > 0 {
			body += ","
		}
		body += `{"resource":"` + typ + `","supportedInteraction":["create","update"]}`
	}
	body += `]}`
	tp, err := topic.Parse([]byte(body))
	require.NoError(t, err)
	return tp
}

func TestPatientKey(t *testing.T) {
	t.Parallel()
	enc := topicOn(t, "Encounter")
	encPat := topicOn(t, "Encounter", "Patient")
	encOrg := topicOn(t, "Encounter", "Organization") // Organization has no patient
	for _, tc := range []struct {
		name    string
		tp      *topic.Topic
		filters []string
		want    string
	}{
		{"no filters", enc, nil, ""},
		{"typed", enc, []string{"Encounter?patient=Patient/p1"}, "Patient/p1"},
		{"untyped", enc, []string{"patient=Patient/p1"}, "Patient/p1"},
		{"with other filters", enc, []string{"Encounter?status=in-progress&patient=Patient/p1", "class=AMB"}, "Patient/p1"},
		{"history dropped", enc, []string{"Encounter?patient=Patient/p1/_history/2"}, "Patient/p1"},
		{"several values", enc, []string{"Encounter?patient=Patient/p1,Patient/p2"}, ""},
		{"bare id", enc, []string{"Encounter?patient=p1"}, ""},
		{"base URL", enc, []string{"Encounter?patient=https://x.example/fhir/Patient/p1"}, ""},
		{"modifier", enc, []string{"Encounter?patient:not=Patient/p1"}, ""},
		{"other parameter", enc, []string{"Encounter?subject=Patient/p1"}, ""},
		{"two patients ANDed: either", enc, []string{"patient=Patient/p1", "patient=Patient/p2"}, "Patient/p1"},
		{"every type pinned", encPat, []string{"Encounter?patient=Patient/p1", "Patient?patient=Patient/p1"}, "Patient/p1"},
		{"untyped pins Patient too", encPat, []string{"patient=Patient/p1"}, "Patient/p1"},
		{"one type unpinned", encPat, []string{"Encounter?patient=Patient/p1"}, ""},
		{"types pinned to different patients", encPat, []string{"Encounter?patient=Patient/p1", "Patient?patient=Patient/p2"}, ""},
		{"a type without patient", encOrg, []string{"patient=Patient/p1"}, ""},
	} {
		var fs []Filter
		for _, raw := range tc.filters {
			f, err := ParseFilter(raw)
			require.NoError(t, err, tc.name)
			fs = append(fs, f)
		}
		require.Equal(t, tc.want, PatientKey(tc.tp, fs), tc.name)
	}
}

func TestPatientKeys(t *testing.T) {
	t.Parallel()
	res := func(s string) *search.Resource {
		r, err := search.NewResource([]byte(s))
		require.NoError(t, err)
		return r
	}
	keys, ok := PatientKeys("Patient", res(`{"resourceType":"Patient","id":"p1"}`))
	require.True(t, ok)
	require.Equal(t, []string{"Patient/p1"}, keys)
	keys, ok = PatientKeys("Encounter", res(`{"resourceType":"Encounter","subject":{"reference":"Patient/p2"}}`))
	require.True(t, ok)
	require.Equal(t, []string{"Patient/p2"}, keys)
	keys, ok = PatientKeys("Encounter", res(`{"resourceType":"Encounter","subject":{"reference":"Group/g"}}`))
	require.True(t, ok)
	require.Empty(t, keys)
	_, ok = PatientKeys("Organization", res(`{"resourceType":"Organization"}`))
	require.False(t, ok)
}
