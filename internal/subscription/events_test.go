package subscription_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/topics"
)

// TestIncludesOnlyLocalReferences: the notificationShape includes of an
// event resolve only references local to Herald's base; another server's
// Patient/p1 and Practitioner/dr1 never load the local ones.
func TestIncludesOnlyLocalReferences(t *testing.T) {
	t.Parallel()
	const base = "https://herald.example/fhir"
	ctx := context.Background()
	st := memory.New()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	svc := resources.New(resources.Config{Store: st, BaseURL: base})
	system := &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/*.cruds")}
	for _, put := range []struct{ typ, id, body string }{
		{"Patient", "p1", `{"resourceType":"Patient","id":"p1"}`},
		{"Practitioner", "dr1", `{"resourceType":"Practitioner","id":"dr1"}`},
		{"Encounter", "foreign", encounterWith("foreign", "https://other.example/fhir")},
		{"Encounter", "own", encounterWith("own", base)},
		{"Encounter", "relative", encounterWith("relative", "")},
	} {
		_, err := svc.Update(ctx, system, put.typ, put.id, []byte(put.body), "")
		require.NoError(t, err)
	}
	included := func(focus, baseURL string) []string {
		ev := store.Event{Number: 1, Topic: "https://herald.dev/fhir/SubscriptionTopic/encounter-start", FocusType: "Encounter", FocusID: focus, FocusVersion: 1, Method: store.MethodUpdate}
		everything := subscription.Audience{Sub: &policy.Subscription{Topic: ev.Topic}, Owner: system, Reader: system}
		events, err := subscription.LoadEvents(ctx, st, lib, baseURL, []store.Event{ev}, fhir.ContentIDOnly, everything, 0)
		require.NoError(t, err)
		out := []string{}
		for _, in := range events[0].Additional {
			out = append(out, in.Ref.Type+"/"+in.Ref.ID)
		}
		return out
	}
	require.Empty(t, included("foreign", base))
	require.ElementsMatch(t, []string{"Patient/p1", "Practitioner/dr1"}, included("own", base))
	require.ElementsMatch(t, []string{"Patient/p1", "Practitioner/dr1"}, included("relative", base))
	require.Empty(t, included("own", ""), "without the base, absolute references are not local")
}

// encounterWith is an in-progress Encounter about Patient/p1 with
// Practitioner/dr1, both references under base ("": relative).
func encounterWith(id, base string) string {
	if base != "" {
		base += "/"
	}
	return fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"%sPatient/p1"},"participant":[{"individual":{"reference":"%sPractitioner/dr1"}}]}`, id, base, base)
}

// TestEventsStopAtTheByteBudget (issue 17, finding 2): $events over large
// full resources was built whole in memory (three concurrent answers took
// 1.8 GB); with a budget the answer ends before the event that would exceed
// it — never before the first — and the client asks again from there.
func TestEventsStopAtTheByteBudget(t *testing.T) {
	t.Parallel()
	ctx, st, lib, svc, system := eventsFixture(t)
	var stored []store.Event
	for i := range 5 {
		id := fmt.Sprintf("e%d", i)
		_, err := svc.Update(ctx, system, "Encounter", id, []byte(encounterWith(id, "")), "")
		require.NoError(t, err)
		stored = append(stored, store.Event{Number: int64(i + 1), Topic: "https://herald.dev/fhir/SubscriptionTopic/encounter-start", FocusType: "Encounter", FocusID: id, FocusVersion: 1, Method: store.MethodUpdate})
	}
	everything := subscription.Audience{Sub: &policy.Subscription{Topic: stored[0].Topic}, Owner: system, Reader: system}
	all, err := subscription.LoadEvents(ctx, st, lib, "", stored, fhir.ContentFullResource, everything, 0)
	require.NoError(t, err)
	require.Len(t, all, 5)
	one := len(all[0].Resource)
	require.Positive(t, one)

	some, err := subscription.LoadEvents(ctx, st, lib, "", stored, fhir.ContentFullResource, everything, 2*one+one/2)
	require.NoError(t, err)
	require.Len(t, some, 2, "the third event would exceed the budget")
	require.Equal(t, int64(2), some[1].Number)

	first, err := subscription.LoadEvents(ctx, st, lib, "", stored, fhir.ContentFullResource, everything, 1)
	require.NoError(t, err)
	require.Len(t, first, 1, "the first event goes out even over the budget, so a client always makes progress")
}

// TestFullResourcesOnlyWhereAGranularReaderMayRead: with full-resource,
// a focus carries its JSON only when the reader's grants permit it by the
// rule REST reads apply (package access), granular scopes included; the
// others are references only.
func TestFullResourcesOnlyWhereAGranularReaderMayRead(t *testing.T) {
	t.Parallel()
	ctx, st, lib, svc, system := eventsFixture(t)
	const topicURL = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	var stored []store.Event
	for i, class := range []string{"AMB", "IMP"} {
		id := "e-" + class
		body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"code":%q},"subject":{"reference":"Patient/p1"}}`, id, class)
		_, err := svc.Update(ctx, system, "Encounter", id, []byte(body), "")
		require.NoError(t, err)
		stored = append(stored, store.Event{Number: int64(i + 1), Topic: topicURL, FocusType: "Encounter", FocusID: id, FocusVersion: 1, Method: store.MethodUpdate})
	}
	ambulatory := &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/Encounter.rs?class=AMB")}
	audience := subscription.Audience{Sub: &policy.Subscription{Topic: topicURL}, Owner: system, Reader: ambulatory}
	events, err := subscription.LoadEvents(ctx, st, lib, "", stored, fhir.ContentFullResource, audience, 0)
	require.NoError(t, err)
	require.Len(t, events, 2)
	require.Contains(t, string(events[0].Resource), `"id":"e-AMB"`)
	require.Nil(t, events[1].Resource, "outside the reader's granular grant: a reference only")
	require.Equal(t, "e-IMP", events[1].Focus.ID)
}

// eventsFixture is a memory store with the built-in topics, a service over
// it and a system principal that may do anything.
func eventsFixture(t *testing.T) (context.Context, store.Store, *topic.Library, *resources.Service, *auth.Principal) {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	return ctx, st, lib, resources.New(resources.Config{Store: st}), &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/*.cruds")}
}
