package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/search"
)

func subscriptionFor(t *testing.T, scopes, patient string, filters ...string) *Subscription {
	t.Helper()
	s := &Subscription{ID: "s", Topic: "https://t.example/enc", Content: "id-only", Status: "active",
		Owner:  Owner{Client: "c", Context: "system", Patient: patient, Scopes: auth.ParseScopes(scopes)},
		Notice: auth.Notice{Types: []string{"Encounter"}}}
	for _, f := range filters {
		c, err := search.ParseCriteria("Encounter", f)
		require.NoError(t, err)
		s.Filters = append(s.Filters, Filter{Raw: f, ResourceType: "Encounter", Criteria: map[string][]*search.Criteria{"Encounter": {c}}})
		s.Notice.Filters = append(s.Notice.Filters, auth.FilterClause{ResourceType: "Encounter", Param: "patient", Value: "Patient/p1"})
	}
	return s
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Now()
	open := Client{MaxPayload: "id-only"}
	for _, c := range []struct {
		name    string
		s       *Subscription
		client  Client
		purpose Purpose
		denied  string
	}{
		{"system grant", subscriptionFor(t, "system/Encounter.rs", ""), open, ForSend, ""},
		{"suspended", subscriptionFor(t, "system/Encounter.rs", ""), Client{Suspended: true, MaxPayload: "id-only"}, ForQuery, "suspended"},
		{"ceiling removes the type", subscriptionFor(t, "system/Encounter.rs", ""), Client{MaxPayload: "id-only", Ceiling: auth.ParseScopes("system/Patient.rs")}, ForWrite, "grants"},
		{"granular ceiling with a pinning filter", subscriptionFor(t, "system/Encounter.rs", "", "patient=Patient/p1"), Client{MaxPayload: "id-only", Ceiling: auth.ParseScopes("system/Encounter.rs?patient=Patient/p1")}, ForSend, ""},
		{"patient grant unpinned", subscriptionFor(t, "patient/Encounter.rs", "p1"), open, ForWrite, "grants"},
		{"payload over the ceiling", subscriptionFor(t, "system/Encounter.rs", ""), Client{MaxPayload: "empty"}, ForQuery, "ceiling"},
	} {
		_, err := Decide(c.s, c.client, now, c.purpose)
		if c.denied == "" {
			require.NoError(t, err, c.name)
			continue
		}
		var d *Denied
		require.ErrorAs(t, err, &d, c.name)
		require.Contains(t, d.Reason, c.denied, c.name)
	}
	off := subscriptionFor(t, "system/Encounter.rs", "")
	off.Status = "off"
	_, err := Decide(off, open, now, ForQuery)
	require.NoError(t, err, "an off Subscription can still be queried")
	_, err = Decide(off, open, now, ForSend)
	require.ErrorContains(t, err, "is off")
	ended := subscriptionFor(t, "system/Encounter.rs", "")
	ended.End = now
	_, err = Decide(ended, open, now, ForSend)
	require.ErrorContains(t, err, "end has passed")
}

func TestAdmits(t *testing.T) {
	t.Parallel()
	enc := func(patient string) *search.Resource {
		r, err := search.NewResource([]byte(`{"resourceType":"Encounter","id":"e","subject":{"reference":"Patient/` + patient + `"}}`))
		require.NoError(t, err)
		return r
	}
	s := subscriptionFor(t, "system/Encounter.rs", "", "patient=Patient/p1")
	owner, err := Decide(s, Client{MaxPayload: "id-only"}, time.Now(), ForSend)
	require.NoError(t, err)
	ev := func(topic, patient string) Event {
		return Event{Topic: topic, FocusType: "Encounter", Patients: []string{patient}, Focus: enc(patient)}
	}
	require.True(t, Admits(s, owner, ev("https://t.example/enc|1.0.0", "p1")), "the bare url admits its versions")
	require.False(t, Admits(s, owner, ev("https://t.example/enc", "p2")), "current filters")
	require.False(t, Admits(s, owner, ev("https://t.example/other", "p1")), "another topic")
	require.False(t, Admits(s, owner, Event{Topic: s.Topic, FocusType: "Encounter"}), "no focus")

	p := subscriptionFor(t, "patient/Encounter.rs", "p1")
	patientOwner := &auth.Principal{Scopes: p.Owner.Scopes, Patient: "p1"}
	require.True(t, Admits(p, patientOwner, ev(p.Topic, "p1")))
	require.False(t, Admits(p, patientOwner, ev(p.Topic, "p2")), "outside the owner's compartment")
}
