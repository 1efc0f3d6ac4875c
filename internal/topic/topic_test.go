package topic

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/topics"
)

func TestBuiltinTopicsParse(t *testing.T) {
	t.Parallel()
	got, raws, err := Builtin(topics.FS)
	require.NoError(t, err)
	require.Len(t, raws, len(got))
	require.GreaterOrEqual(t, len(got), 7)
	ids := map[string]bool{}
	for _, tp := range got {
		ids[tp.ID] = true
		require.Equal(t, "active", tp.Status, tp.ID)
		require.True(t, strings.HasPrefix(tp.URL, "https://herald.dev/fhir/SubscriptionTopic/"), tp.URL)
		require.True(t, strings.HasSuffix(tp.URL, "/"+tp.ID))
		_, ok := tp.FilterFor(tp.Triggers[0].ResourceType, "patient")
		require.True(t, ok, "%s can be filtered by patient", tp.ID)
		require.NotEmpty(t, tp.Shapes, tp.ID)
	}
	for _, id := range []string{"encounter-start", "encounter-end", "new-lab-result", "new-diagnostic-report", "medication-request-created", "appointment-booked", "patient-demographics-changed"} {
		require.True(t, ids[id], id)
	}
}

const sample = `{"resourceType":"SubscriptionTopic","id":"t1","url":"http://example.org/topic/t1","status":"active",
 "resourceTrigger":[{"resource":"http://hl7.org/fhir/StructureDefinition/Encounter","supportedInteraction":["create","update"],
   "queryCriteria":{"previous":"status:not=finished","resultForCreate":"test-passes","current":"status=finished","resultForDelete":"test-fails","requireBoth":true}}],
 "canFilterBy":[{"resource":"Encounter","filterParameter":"patient"}],
 "notificationShape":[{"resource":"Encounter","include":["Encounter:patient"]}]}`

func TestParse(t *testing.T) {
	t.Parallel()
	tp, err := Parse([]byte(sample))
	require.NoError(t, err)
	require.Equal(t, []Trigger{{ResourceType: "Encounter", Interactions: []Interaction{Create, Update},
		Query: &QueryCriteria{Previous: "status:not=finished", Current: "status=finished", ResultForCreate: true, RequireBoth: true}}}, tp.Triggers)
	require.Equal(t, "http://example.org/topic/t1", tp.Canonical())
	require.Equal(t, []string{"Encounter"}, tp.ResourceTypes())
	require.Equal(t, []string{"Patient"}, tp.IncludedTypes(func(typ, param string) []string { return []string{"Patient"} }))
}

func TestParseRejectsWhatHeraldCannotEvaluate(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, from, to, mention string }{
		{"eventTrigger", `"canFilterBy"`, `"eventTrigger":[{"event":{"text":"x"},"resource":"Encounter"}],"canFilterBy"`, "eventTrigger"},
		{"fhirPathCriteria", `"queryCriteria"`, `"fhirPathCriteria":"%current.status = 'finished'","queryCriteria"`, "fhirPathCriteria"},
		{"unknown interaction", `"supportedInteraction":["create","update"]`, `"supportedInteraction":["create","patch"]`, "patch"},
		{"unknown resource", `"resource":"http://hl7.org/fhir/StructureDefinition/Encounter"`, `"resource":"http://hl7.org/fhir/StructureDefinition/Encountr"`, "Encountr"},
		{"filter on untriggered type", `"canFilterBy":[{"resource":"Encounter"`, `"canFilterBy":[{"resource":"Observation"`, "canFilterBy"},
		{"bad resultForCreate", `"resultForCreate":"test-passes"`, `"resultForCreate":"maybe"`, "resultForCreate"},
		{"no url", `"url":"http://example.org/topic/t1",`, ``, "url"},
		{"versioned url", `"url":"http://example.org/topic/t1"`, `"url":"http://example.org/topic/t1|2"`, "url"},
		{"no trigger", `"resourceTrigger":[`, `"resourceTrigger":[],"x":[`, "resourceTrigger"},
		{"bad status", `"status":"active"`, `"status":"on"`, "status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := strings.Replace(sample, c.from, c.to, 1)
			require.NotEqual(t, sample, body)
			_, err := Parse([]byte(body))
			require.Error(t, err)
			fe := fhir.AsError(err)
			require.Equal(t, 422, fe.Status(), fe.Message)
			require.Contains(t, fe.Message, c.mention)
		})
	}
	_, err := Parse([]byte(strings.Replace(sample, "status:not=finished", "status:below=finished", 1)))
	require.ErrorContains(t, err, "queryCriteria.previous")
	require.ErrorContains(t, err, ":below")
	_, err = Parse([]byte(strings.Replace(sample, `"filterParameter":"patient"`, `"filterParameter":"colour"`, 1)))
	require.ErrorContains(t, err, "colour")
	_, err = Parse([]byte(`{"resourceType":"Patient"}`))
	require.Equal(t, 400, fhir.StatusOf(err))
}

func TestLibrary(t *testing.T) {
	t.Parallel()
	l := NewLibrary()
	v1 := &Topic{ID: "a1", URL: "http://x/t", Version: "1", Status: "active"}
	v2 := &Topic{ID: "a2", URL: "http://x/t", Version: "2", Status: "active"}
	draft := &Topic{ID: "d", URL: "http://x/d", Status: "draft"}
	l.Put(v1)
	l.Put(v2)
	l.Put(draft)
	got, ok := l.Lookup("http://x/t")
	require.True(t, ok)
	require.Same(t, v2, got, "the newest active version")
	got, ok = l.Lookup("http://x/t|1")
	require.True(t, ok)
	require.Same(t, v1, got)
	_, ok = l.Lookup("http://x/t|3")
	require.False(t, ok)
	_, ok = l.Lookup("http://x/d")
	require.False(t, ok, "drafts are not subscribable")
	require.Len(t, l.Active(), 2)
	require.Empty(t, l.Watching("Encounter"), "these topics have no triggers")

	l.Put(&Topic{ID: "a2", URL: "http://x/t", Version: "2", Status: "retired"})
	got, _ = l.Lookup("http://x/t")
	require.Same(t, v1, got, "replacing by id retires v2")
	l.Remove("a1")
	_, ok = l.Lookup("http://x/t")
	require.False(t, ok)
}
