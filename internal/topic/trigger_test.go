package topic

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/topics"
)

func encounter(t *testing.T, status string) *search.Resource {
	t.Helper()
	r, err := search.NewResource([]byte(`{"resourceType":"Encounter","id":"e1","status":"` + status + `","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`))
	require.NoError(t, err)
	return r
}

func TestBuiltinTriggers(t *testing.T) {
	t.Parallel()
	all, _, err := Builtin(topics.FS)
	require.NoError(t, err)
	byID := map[string]*Topic{}
	for _, tp := range all {
		byID[tp.ID] = tp
	}
	start, end := byID["encounter-start"], byID["encounter-end"]
	planned, inProgress, finished := encounter(t, "planned"), encounter(t, "in-progress"), encounter(t, "finished")
	cases := []struct {
		name     string
		topic    *Topic
		change   Change
		wantFire bool
	}{
		{"created in progress", start, Change{Type: "Encounter", Interaction: Create, Cur: inProgress}, true},
		{"created planned", start, Change{Type: "Encounter", Interaction: Create, Cur: planned}, false},
		{"planned → in-progress", start, Change{Type: "Encounter", Interaction: Update, Prev: planned, Cur: inProgress}, true},
		{"in-progress → in-progress (no change)", start, Change{Type: "Encounter", Interaction: Update, Prev: inProgress, Cur: inProgress}, false},
		{"in-progress → finished", start, Change{Type: "Encounter", Interaction: Update, Prev: inProgress, Cur: finished}, false},
		{"deleted in progress", start, Change{Type: "Encounter", Interaction: Delete, Prev: inProgress}, false},
		{"end: in-progress → finished", end, Change{Type: "Encounter", Interaction: Update, Prev: inProgress, Cur: finished}, true},
		{"end: created finished", end, Change{Type: "Encounter", Interaction: Create, Cur: finished}, true},
		{"end: other type", end, Change{Type: "Observation", Interaction: Create, Cur: finished}, false},
	}
	for _, c := range cases {
		got, err := c.topic.Fires(c.change)
		require.NoError(t, err, c.name)
		require.Equal(t, c.wantFire, got, c.name)
	}

	pat, err := search.NewResource([]byte(`{"resourceType":"Patient","id":"p1"}`))
	require.NoError(t, err)
	demo := byID["patient-demographics-changed"]
	fire, _ := demo.Fires(Change{Type: "Patient", Interaction: Update, Prev: pat, Cur: pat})
	require.True(t, fire)
	fire, _ = demo.Fires(Change{Type: "Patient", Interaction: Create, Cur: pat})
	require.False(t, fire, "create is not a supported interaction of this topic")
}

func TestRequireBothFalseIsOr(t *testing.T) {
	t.Parallel()
	tr := Trigger{ResourceType: "Encounter", Interactions: []Interaction{Update},
		Query: &QueryCriteria{Previous: "status=planned", Current: "status=finished"}}
	fire, err := tr.Fires(Change{Type: "Encounter", Interaction: Update, Prev: encounter(t, "planned"), Cur: encounter(t, "in-progress")})
	require.NoError(t, err)
	require.True(t, fire, "previous alone satisfies an OR")
	tr.Query.RequireBoth = true
	fire, _ = tr.Fires(Change{Type: "Encounter", Interaction: Update, Prev: encounter(t, "planned"), Cur: encounter(t, "in-progress")})
	require.False(t, fire)
}
