package publish_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/topics"
)

const (
	start = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	end   = "https://herald.dev/fhir/SubscriptionTopic/encounter-end"
)

var system = &auth.Principal{ClientID: "publisher", Scopes: auth.ParseScopes("system/*.cruds")}

func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"memory", func(*testing.T) store.Store { return memory.New() }},
		{"postgres", func(t *testing.T) store.Store { return pgtest.New(t) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

func setup(t *testing.T, st store.Store, subs ...store.SubscriptionState) *resources.Service {
	t.Helper()
	ctx := context.Background()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		for _, s := range subs {
			s.Endpoint, s.Content, s.Owner = "https://hooks.example.org/x", "id-only", "c"
			s.CreatedAt, s.UpdatedAt = time.Now(), time.Now()
			if err := tx.PutSubscription(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}))
	p := &publish.Publisher{Topics: lib}
	return resources.New(resources.Config{Store: st, BaseURL: "https://h.example/fhir", OnWrite: []resources.WriteHook{p.Hook}})
}

func encounter(id, status, patient string) string {
	return fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":%q,"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, id, status, patient)
}

// focusOf lists a Subscription's events as "number:focus id/version method".
func focusOf(t *testing.T, st store.Store, id string) []string {
	t.Helper()
	evs, err := st.Events(context.Background(), id, 1, 0, 0)
	require.NoError(t, err)
	out := []string{}
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%d:%s/%d %s", e.Number, e.FocusID, e.FocusVersion, e.Method))
	}
	return out
}

// TestWriteSequence shows, for one sequence of writes, exactly which
// Subscriptions get which event numbers.
func TestWriteSequence(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc := setup(t, st,
			store.SubscriptionState{ID: "a", Status: "active", Topic: start, Filters: []string{"Encounter?patient=Patient/p1"}},
			store.SubscriptionState{ID: "b", Status: "requested", Topic: start + "|1.0.0"},
			store.SubscriptionState{ID: "c", Status: "error", Topic: end, Filters: []string{"patient=Patient/p2"}},
			store.SubscriptionState{ID: "off", Status: "off", Topic: start},
			store.SubscriptionState{ID: "ended", Status: "active", Topic: start, End: time.Now().Add(-time.Minute)},
			store.SubscriptionState{ID: "other-version", Status: "active", Topic: start + "|0.9"},
		)
		put := func(id, status, patient string) {
			_, err := svc.Update(ctx, system, "Encounter", id, []byte(encounter(id, status, patient)), "")
			require.NoError(t, err)
		}
		put("e1", "planned", "p1")     // criteria fail: not in progress
		put("e1", "in-progress", "p1") // a#1, b#1
		put("e1", "in-progress", "p1") // no change of status: previous fails
		put("e2", "in-progress", "p2") // created in progress: b#2 (a filters it out)
		put("e2", "finished", "p2")    // encounter-end: c#1
		_, err := svc.Delete(ctx, system, "Encounter", "e1", "")
		require.NoError(t, err) // encounter-start does not fire on delete

		// A transaction: both entries fire, in processing order.
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		 {"resource":` + encounter("e3", "in-progress", "p1") + `,"request":{"method":"PUT","url":"Encounter/e3"}},
		 {"resource":` + encounter("e4", "in-progress", "p3") + `,"request":{"method":"PUT","url":"Encounter/e4"}}]}`
		_, err = svc.Bundle(ctx, system, []byte(tx), true)
		require.NoError(t, err) // a#2 (e3), b#3 (e3), b#4 (e4)

		// A failed transaction leaves no events and consumes no numbers.
		bad := `{"resourceType":"Bundle","type":"transaction","entry":[
		 {"resource":` + encounter("e5", "in-progress", "p1") + `,"request":{"method":"PUT","url":"Encounter/e5"}},
		 {"resource":{"resourceType":"Encounter","id":"e6","status":"bogus"},"request":{"method":"PUT","url":"Encounter/e6"}}]}`
		_, err = svc.Bundle(ctx, system, []byte(bad), true)
		require.Error(t, err)
		// A refused write (stale If-Match) leaves none either.
		_, err = svc.Update(ctx, system, "Encounter", "e3", []byte(encounter("e3", "in-progress", "p1")), `W/"9"`)
		require.Error(t, err)
		put("e7", "in-progress", "p1") // a#3, b#5: numbering continues without gaps

		require.Equal(t, []string{"1:e1/2 PUT", "2:e3/1 PUT", "3:e7/1 PUT"}, focusOf(t, st, "a"))
		require.Equal(t, []string{"1:e1/2 PUT", "2:e2/1 PUT", "3:e3/1 PUT", "4:e4/1 PUT", "5:e7/1 PUT"}, focusOf(t, st, "b"))
		require.Equal(t, []string{"1:e2/2 PUT"}, focusOf(t, st, "c"))
		require.Empty(t, focusOf(t, st, "off"))
		require.Empty(t, focusOf(t, st, "ended"))
		require.Empty(t, focusOf(t, st, "other-version"))
		n, err := st.EventCount(ctx, "b")
		require.NoError(t, err)
		require.EqualValues(t, 5, n)
	})
}

func TestDeleteEvents(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		custom := `{"resourceType":"SubscriptionTopic","id":"enc-any","url":"https://example.org/enc-any","status":"active",
		 "resourceTrigger":[{"resource":"Encounter","supportedInteraction":["create","update","delete"]}],
		 "canFilterBy":[{"resource":"Encounter","filterParameter":"patient"}]}`
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			return tx.Put(ctx, store.Version{Type: "SubscriptionTopic", ID: "enc-any", VersionID: 1, Method: store.MethodUpdate, LastUpdated: time.Now().Truncate(time.Millisecond), Body: []byte(custom)})
		}))
		svc := setup(t, st, store.SubscriptionState{ID: "d", Status: "active", Topic: "https://example.org/enc-any", Filters: []string{"patient=Patient/p1"}})
		_, err := svc.Update(ctx, system, "Encounter", "x", []byte(encounter("x", "planned", "p1")), "")
		require.NoError(t, err)
		_, err = svc.Delete(ctx, system, "Encounter", "x", "")
		require.NoError(t, err)
		_, err = svc.Update(ctx, system, "Encounter", "y", []byte(encounter("y", "planned", "p2")), "")
		require.NoError(t, err)
		_, err = svc.Delete(ctx, system, "Encounter", "y", "")
		require.NoError(t, err)
		// The delete is filtered on the last version before it.
		require.Equal(t, []string{"1:x/1 PUT", "2:x/2 DELETE"}, focusOf(t, st, "d"))
	})
}
