package publish_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/topics"
)

const (
	booked       = "https://herald.dev/fhir/SubscriptionTopic/appointment-booked"
	demographics = "https://herald.dev/fhir/SubscriptionTopic/patient-demographics-changed"
)

// countingTx records the ids of the subscription states the publisher loads.
type countingTx struct {
	store.Tx
	mu     *sync.Mutex
	loaded *[]string
}

func (c countingTx) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	subs, err := c.Tx.Subscriptions(ctx, f)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subs {
		*c.loaded = append(*c.loaded, s.ID)
	}
	return subs, err
}

// pinnedSetup stores the states with the PatientKey Prepare would give them
// (unless one is set) and returns a service whose publisher reports the
// states it loads for each write to loaded.
func pinnedSetup(t *testing.T, st store.Store, subs ...store.SubscriptionState) (*resources.Service, func() []string) {
	t.Helper()
	ctx := context.Background()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		for _, s := range subs {
			if s.PatientKey == "" {
				tp, ok := lib.Lookup(s.Topic)
				require.True(t, ok, s.Topic)
				var fs []subscription.Filter
				for _, raw := range s.Filters {
					f, err := subscription.ParseFilter(raw)
					require.NoError(t, err)
					fs = append(fs, f)
				}
				s.PatientKey = subscription.PatientKey(tp, fs)
			} else if s.PatientKey == "-" {
				s.PatientKey = ""
			}
			s.Endpoint, s.Content, s.Owner = "https://hooks.example.org/x", "id-only", "c"
			s.CreatedAt, s.UpdatedAt = time.Now(), time.Now()
			if err := tx.PutSubscription(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}))
	p := &publish.Publisher{Topics: lib, BaseURL: "https://h.example/fhir"}
	var mu sync.Mutex
	var loaded []string
	hook := func(ctx context.Context, tx store.Tx, prev *store.Version, cur store.Version) error {
		return p.Hook(ctx, countingTx{Tx: tx, mu: &mu, loaded: &loaded}, prev, cur)
	}
	svc := resources.New(resources.Config{Store: st, BaseURL: "https://h.example/fhir", OnWrite: []resources.WriteHook{hook}})
	return svc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(loaded)
		slices.Sort(out)
		loaded = nil
		return out
	}
}

// TestPinnedNotLoaded: a Subscription pinned to another patient is not even
// loaded, and pinning changes no event.
func TestPinnedNotLoaded(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc, loaded := pinnedSetup(t, st,
			store.SubscriptionState{ID: "p1", Status: "active", Topic: start, Filters: []string{"Encounter?patient=Patient/p1"}},
			store.SubscriptionState{ID: "p1-untyped", Status: "active", Topic: start, Filters: []string{"patient=Patient/p1", "class=AMB"}},
			store.SubscriptionState{ID: "p2", Status: "active", Topic: start, Filters: []string{"Encounter?patient=Patient/p2"}},
			store.SubscriptionState{ID: "all", Status: "active", Topic: start + "|1.0.0"},
			store.SubscriptionState{ID: "bare-id", Status: "active", Topic: start, Filters: []string{"Encounter?patient=p2"}},         // not pinned
			store.SubscriptionState{ID: "not", Status: "active", Topic: start, Filters: []string{"Encounter?patient:not=Patient/p2"}}, // not pinned
			// Pinned to p2 but with filters every Encounter passes: an event
			// for p1's Encounter would show that the key was ignored.
			store.SubscriptionState{ID: "decoy", Status: "active", Topic: start, PatientKey: "Patient/p2"},
		)
		_, err := svc.Update(ctx, system, "Encounter", "e1", []byte(encounter("e1", "in-progress", "p1")), "")
		require.NoError(t, err)
		require.Equal(t, []string{"all", "bare-id", "not", "p1", "p1-untyped"}, loaded())
		require.Equal(t, []string{"1:e1/1 PUT"}, focusOf(t, st, "p1"))
		require.Equal(t, []string{"1:e1/1 PUT"}, focusOf(t, st, "p1-untyped"))
		require.Equal(t, []string{"1:e1/1 PUT"}, focusOf(t, st, "all"))
		require.Empty(t, focusOf(t, st, "p2"))
		require.Empty(t, focusOf(t, st, "bare-id"))
		require.Empty(t, focusOf(t, st, "decoy"), "pinned to another patient: never loaded")

		// An Encounter whose subject is written with Herald's base finds p2's.
		body := `{"resourceType":"Encounter","id":"e2","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"https://h.example/fhir/Patient/p2"}}`
		_, err = svc.Update(ctx, system, "Encounter", "e2", []byte(body), "")
		require.NoError(t, err)
		require.Equal(t, []string{"all", "bare-id", "decoy", "not", "p2"}, loaded())
		require.Equal(t, []string{"1:e2/1 PUT"}, focusOf(t, st, "p2"))
		require.Equal(t, []string{"1:e2/1 PUT"}, focusOf(t, st, "bare-id"))

		// Another server's Patient/p2 is not p2: only unpinned ones are
		// loaded, and neither p2's nor bare-id (p2 by id) match.
		body = `{"resourceType":"Encounter","id":"e3","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"https://other.example/fhir/Patient/p2"}}`
		_, err = svc.Update(ctx, system, "Encounter", "e3", []byte(body), "")
		require.NoError(t, err)
		require.Equal(t, []string{"all", "bare-id", "not"}, loaded())
		require.Equal(t, []string{"1:e2/1 PUT"}, focusOf(t, st, "p2"))
		require.Equal(t, []string{"1:e2/1 PUT"}, focusOf(t, st, "bare-id"))
		require.Equal(t, []string{"1:e1/1 PUT", "2:e2/1 PUT", "3:e3/1 PUT"}, focusOf(t, st, "all"))
	})
}

func appointment(id, status string, actors ...string) string {
	parts := ""
	for i, a := range actors {
		if i > 0 {
			parts += ","
		}
		parts += fmt.Sprintf(`{"actor":{"reference":%q},"status":"accepted"}`, a)
	}
	return fmt.Sprintf(`{"resourceType":"Appointment","id":%q,"status":%q,"participant":[%s]}`, id, status, parts)
}

// TestPinnedAppointment: the patient of an Appointment is a participant.
func TestPinnedAppointment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc, loaded := pinnedSetup(t, st,
			store.SubscriptionState{ID: "a1", Status: "active", Topic: booked, Filters: []string{"Appointment?patient=Patient/a1"}},
			store.SubscriptionState{ID: "a2", Status: "active", Topic: booked, Filters: []string{"Appointment?patient=Patient/a2"}},
			store.SubscriptionState{ID: "a3", Status: "active", Topic: booked, Filters: []string{"Appointment?patient=Patient/a3"}},
			store.SubscriptionState{ID: "a1-and-a2", Status: "active", Topic: booked, Filters: []string{"Appointment?patient=Patient/a1", "Appointment?patient=Patient/a2"}},
			store.SubscriptionState{ID: "dr", Status: "active", Topic: booked, Filters: []string{"Appointment?practitioner=Practitioner/dr"}},
		)
		for _, s := range []string{"a1", "a2", "a3", "a1-and-a2"} {
			got, err := st.Subscription(ctx, s)
			require.NoError(t, err)
			require.NotEmpty(t, got.PatientKey, s)
		}
		_, err := svc.Update(ctx, system, "Appointment", "x", []byte(appointment("x", "booked", "Practitioner/dr", "Patient/a1", "Location/l", "Patient/a2")), "")
		require.NoError(t, err)
		require.Equal(t, []string{"a1", "a1-and-a2", "a2", "dr"}, loaded())
		for _, s := range []string{"a1", "a2", "a1-and-a2", "dr"} {
			require.Equal(t, []string{"1:x/1 PUT"}, focusOf(t, st, s), s)
		}
		require.Empty(t, focusOf(t, st, "a3"))

		// Moved from a1 to a3 and booked again: both versions' patients are
		// looked up, the filters (on the current version) decide.
		_, err = svc.Update(ctx, system, "Appointment", "x", []byte(appointment("x", "pending", "Patient/a1")), "")
		require.NoError(t, err)
		loaded()
		_, err = svc.Update(ctx, system, "Appointment", "x", []byte(appointment("x", "booked", "Patient/a3")), "")
		require.NoError(t, err)
		require.Equal(t, []string{"a1", "a1-and-a2", "a3", "dr"}, loaded())
		require.Equal(t, []string{"1:x/1 PUT"}, focusOf(t, st, "a1"))
		require.Equal(t, []string{"1:x/3 PUT"}, focusOf(t, st, "a3"))
	})
}

// TestPinnedPatient: on Patient, Herald's patient filter is the Patient
// itself.
func TestPinnedPatient(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc, loaded := pinnedSetup(t, st,
			store.SubscriptionState{ID: "me", Status: "active", Topic: demographics, Filters: []string{"Patient?patient=Patient/me"}},
			store.SubscriptionState{ID: "you", Status: "active", Topic: demographics, Filters: []string{"patient=Patient/you"}},
			store.SubscriptionState{ID: "ident", Status: "active", Topic: demographics, Filters: []string{"Patient?identifier=s|v"}},
		)
		got, err := st.Subscription(ctx, "me")
		require.NoError(t, err)
		require.Equal(t, "Patient/me", got.PatientKey)
		patient := func(gender string) []byte {
			return []byte(`{"resourceType":"Patient","id":"me","gender":"` + gender + `","identifier":[{"system":"s","value":"v"}]}`)
		}
		_, err = svc.Update(ctx, system, "Patient", "me", patient("male"), "")
		require.NoError(t, err)
		loaded() // a create does not fire
		_, err = svc.Update(ctx, system, "Patient", "me", patient("female"), "")
		require.NoError(t, err)
		require.Equal(t, []string{"ident", "me"}, loaded())
		require.Equal(t, []string{"1:me/2 PUT"}, focusOf(t, st, "me"))
		require.Equal(t, []string{"1:me/2 PUT"}, focusOf(t, st, "ident"))
		require.Empty(t, focusOf(t, st, "you"))
	})
}

// TestTopicChangeUnpins: when a topic's resource types change, keys derived
// from the old types are cleared, so the new type's writes reach the
// Subscriptions whose filters do not constrain it.
func TestTopicChangeUnpins(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		admin := &auth.Principal{ClientID: "admin", Admin: true, Scopes: auth.ParseScopes("system/*.cruds")}
		lib, err := topic.Load(ctx, st, topics.FS, time.Now())
		require.NoError(t, err)
		p := &publish.Publisher{Topics: lib}
		svc := resources.New(resources.Config{Store: st, BaseURL: "https://h.example/fhir", OnWrite: []resources.WriteHook{p.Hook},
			Rules: map[string]resources.TypeRules{"SubscriptionTopic": typerules.Topic{Rules: &topic.Rules{Library: lib}}}})
		def := func(types ...string) []byte {
			trig := ""
			for i, typ := range types {
				if i > 0 {
					trig += ","
				}
				trig += `{"resource":"` + typ + `","supportedInteraction":["create","update"]}`
			}
			return []byte(`{"resourceType":"SubscriptionTopic","id":"t","url":"https://example.org/t","status":"active","resourceTrigger":[` + trig + `],
			 "canFilterBy":[{"resource":"Encounter","filterParameter":"patient"}]}`)
		}
		_, err = svc.Update(ctx, admin, "SubscriptionTopic", "t", def("Encounter"), "")
		require.NoError(t, err)
		pinnedSetup(t, st, store.SubscriptionState{ID: "s", Status: "active", Topic: "https://example.org/t", Filters: []string{"Encounter?patient=Patient/p1"}})
		got, err := st.Subscription(ctx, "s")
		require.NoError(t, err)
		require.Equal(t, "Patient/p1", got.PatientKey)

		// Same types, another description: the key stays.
		_, err = svc.Update(ctx, admin, "SubscriptionTopic", "t", def("Encounter"), "")
		require.NoError(t, err)
		got, err = st.Subscription(ctx, "s")
		require.NoError(t, err)
		require.Equal(t, "Patient/p1", got.PatientKey)

		// Observation added: the filter does not constrain Observations.
		_, err = svc.Update(ctx, admin, "SubscriptionTopic", "t", def("Encounter", "Observation"), "")
		require.NoError(t, err)
		got, err = st.Subscription(ctx, "s")
		require.NoError(t, err)
		require.Empty(t, got.PatientKey)
		obs := `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`
		_, err = svc.Update(ctx, system, "Observation", "o1", []byte(obs), "")
		require.NoError(t, err)
		require.Equal(t, []string{"1:o1/1 PUT"}, focusOf(t, st, "s"))
	})
}
