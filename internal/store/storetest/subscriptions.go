package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// Subscription states, the allow-list and the client registry. Run lists
// these tests beside the resource tests.

// Canonicals and endpoints the fixtures use.
const (
	topicA    = "http://example.org/fhir/SubscriptionTopic/encounter-start"
	topicB    = "http://example.org/fhir/SubscriptionTopic/encounter-start|2.0"
	endpointA = "https://hooks.example.org/herald"
	endpointB = "https://hooks.example.org/herald/b"
	endpointC = "https://other.example.net/notify"
)

// sub builds a state with every field set. Times have millisecond precision
// and a zone of their own; the store keeps the instant, not the zone.
func sub(id string) store.SubscriptionState {
	zone := time.FixedZone("UTC-03:00", -3*3600)
	return store.SubscriptionState{
		ID:              id,
		Owner:           "client-a",
		Context:         "patient/pat-1",
		Scopes:          "system/Subscription.crus system/Encounter.rs patient/Observation.rs",
		Patient:         "pat-1",
		TokenExp:        time.Date(2024, 3, 1, 10, 30, 0, 123_000_000, zone),
		Status:          "active",
		Error:           "",
		Topic:           topicA,
		Filters:         []string{"Encounter?status=in-progress", "Encounter?class=AMB", "Encounter?patient=Patient/pat-1"},
		Endpoint:        endpointA,
		Content:         "id-only",
		Payload:         "application/fhir+json;fhirVersion=4.0",
		End:             time.Date(2025, 1, 31, 23, 59, 59, 999_000_000, zone),
		HeartbeatPeriod: 24 * time.Hour,
		Timeout:         1500 * time.Millisecond,
		MaxCount:        100,
		PatientKey:      "Patient/pat-1",
		SealedSecret:    "v1.c2VjcmV0.bm9uY2U",
		SealedHeaders:   "v1.aGVhZGVycw.bm9uY2U",
		CreatedAt:       at(0, 1),
		UpdatedAt:       at(3, 456),
	}
}

// putSubs commits each state in a transaction of its own.
func putSubs(t *testing.T, s store.Store, states ...store.SubscriptionState) {
	t.Helper()
	for _, st := range states {
		err := s.InTx(t.Context(), func(tx store.Tx) error { return tx.PutSubscription(t.Context(), st) })
		require.NoError(t, err, "put subscription %s", st.ID)
	}
}

// requireSub compares states field by field: times with Equal, durations
// exactly, Filters in order with nil and empty alike.
func requireSub(t *testing.T, want, got store.SubscriptionState, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	requireTime := func(field string, want, got time.Time) {
		t.Helper()
		require.Truef(t, want.Equal(got), "%s %s: want %s, got %s", field, msg, want, got)
	}
	require.Equal(t, want.ID, got.ID, "ID %s", msg)
	require.Equal(t, want.Owner, got.Owner, "Owner %s", msg)
	require.Equal(t, want.Context, got.Context, "Context %s", msg)
	require.Equal(t, want.Scopes, got.Scopes, "Scopes %s", msg)
	require.Equal(t, want.Patient, got.Patient, "Patient %s", msg)
	requireTime("TokenExp", want.TokenExp, got.TokenExp)
	require.Equal(t, want.Status, got.Status, "Status %s", msg)
	require.Equal(t, want.Error, got.Error, "Error %s", msg)
	require.Equal(t, want.ErrorCode, got.ErrorCode, "ErrorCode %s", msg)
	require.Equal(t, want.Payload, got.Payload, "Payload %s", msg)
	require.Equal(t, want.NotificationToken, got.NotificationToken, "NotificationToken %s", msg)
	require.Equal(t, want.Topic, got.Topic, "Topic %s", msg)
	if len(want.Filters) == 0 {
		require.Empty(t, got.Filters, "Filters %s", msg)
	} else {
		require.Equal(t, want.Filters, got.Filters, "Filters %s", msg)
	}
	require.Equal(t, want.Endpoint, got.Endpoint, "Endpoint %s", msg)
	require.Equal(t, want.Content, got.Content, "Content %s", msg)
	requireTime("End", want.End, got.End)
	require.Equal(t, want.HeartbeatPeriod, got.HeartbeatPeriod, "HeartbeatPeriod %s", msg)
	require.Equal(t, want.Timeout, got.Timeout, "Timeout %s", msg)
	require.Equal(t, want.MaxCount, got.MaxCount, "MaxCount %s", msg)
	require.Equal(t, want.PatientKey, got.PatientKey, "PatientKey %s", msg)
	require.Equal(t, want.SealedSecret, got.SealedSecret, "SealedSecret %s", msg)
	require.Equal(t, want.SealedHeaders, got.SealedHeaders, "SealedHeaders %s", msg)
	requireTime("CreatedAt", want.CreatedAt, got.CreatedAt)
	requireTime("UpdatedAt", want.UpdatedAt, got.UpdatedAt)
}

func requireSubs(t *testing.T, want, got []store.SubscriptionState, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	require.Equal(t, subIDs(want), subIDs(got), msg)
	for i := range want {
		requireSub(t, want[i], got[i], msg, fmt.Sprintf(" [%d]", i))
	}
}

// subIDs lists the ids of states; nil when there are none.
func subIDs(states []store.SubscriptionState) []string {
	var out []string
	for _, s := range states {
		out = append(out, s.ID)
	}
	return out
}

// requireSubAbsent checks that the store has no state with id.
func requireSubAbsent(t *testing.T, r store.SubscriptionReader, id string, msgAndArgs ...any) {
	t.Helper()
	_, err := r.Subscription(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound, msgAndArgs...)
}

// requireSubStored reads id through Subscription and through Subscriptions
// and compares both with want.
func requireSubStored(t *testing.T, r store.SubscriptionReader, want store.SubscriptionState, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	got, err := r.Subscription(t.Context(), want.ID)
	require.NoError(t, err, "Subscription %s", msg)
	requireSub(t, want, got, "Subscription ", msg)
	list, err := r.Subscriptions(t.Context(), store.SubscriptionFilter{IDs: []string{want.ID}})
	require.NoError(t, err, "Subscriptions %s", msg)
	requireSubs(t, []store.SubscriptionState{want}, list, "Subscriptions ", msg)
}

func testSubscriptionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sub("full")

	// Only what the schema requires; every other field zero.
	minimal := store.SubscriptionState{ID: "minimal", Status: "requested", Content: "empty"}

	emptyFilters := sub("empty-filters")
	emptyFilters.Filters = []string{}
	emptyFilters.Status, emptyFilters.Error, emptyFilters.ErrorCode = "error", "endpoint answered 503 five times", "error-response"
	emptyFilters.Payload = "application/json"
	emptyFilters.NotificationToken = true
	emptyFilters.Content = "full-resource"
	emptyFilters.Patient = ""
	emptyFilters.HeartbeatPeriod, emptyFilters.Timeout, emptyFilters.MaxCount = 10*time.Second, 0, 1

	putSubs(t, s, full, minimal, emptyFilters)
	for _, want := range []store.SubscriptionState{full, minimal, emptyFilters} {
		requireSubStored(t, s, want, want.ID)
	}
	got, err := s.Subscription(ctx, "minimal")
	require.NoError(t, err)
	require.True(t, got.TokenExp.IsZero(), "a zero TokenExp stays zero")
	require.True(t, got.End.IsZero(), "a zero End stays zero")
	require.True(t, got.CreatedAt.IsZero() && got.UpdatedAt.IsZero(), "zero CreatedAt and UpdatedAt stay zero")

	// A Tx reads committed states too.
	err = s.InTx(ctx, func(tx store.Tx) error {
		requireSubStored(t, tx, full, "through a Tx")
		requireSubAbsent(t, tx, "nope", "Tx.Subscription of an absent id")
		return nil
	})
	require.NoError(t, err)
	requireSubAbsent(t, s, "nope", "Subscription of an absent id")

	// Neither the caller's slices nor the returned ones are shared with the
	// store.
	alias := sub("alias")
	putSubs(t, s, alias)
	alias.Filters[0] = "Changed?by=caller"
	got, err = s.Subscription(ctx, "alias")
	require.NoError(t, err)
	requireSub(t, sub("alias"), got, "after the caller changed its Filters")
	got.Filters[1] = "Changed?by=reader"
	list, err := s.Subscriptions(ctx, store.SubscriptionFilter{IDs: []string{"alias"}})
	require.NoError(t, err)
	require.Len(t, list, 1)
	list[0].Filters[2] = "Changed?by=lister"
	requireSubStored(t, s, sub("alias"), "after readers changed the returned Filters")
}

func testSubscriptionReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := sub("s1")
	other := sub("s2")
	putSubs(t, s, orig, other)

	repl := orig
	repl.Owner, repl.Context = "client-b", "system"
	repl.Scopes = "system/Subscription.crus"
	repl.Patient = ""
	repl.TokenExp = time.Time{}
	repl.Status, repl.Error = "off", "the endpoint is no longer allowed"
	repl.Topic = topicB
	repl.Filters = []string{"Encounter?class=IMP"}
	repl.Endpoint = endpointB
	repl.Content = "full-resource"
	repl.End = time.Time{}
	repl.HeartbeatPeriod, repl.Timeout, repl.MaxCount = 0, 20*time.Second, 0
	repl.SealedSecret, repl.SealedHeaders = "", ""
	repl.PatientKey = "" // a replace can unpin
	repl.UpdatedAt = at(9, 999)
	putSubs(t, s, repl)
	requireSubStored(t, s, repl, "replaced")
	requireSubStored(t, s, other, "the other state is untouched")
	all, err := s.Subscriptions(ctx, store.SubscriptionFilter{})
	require.NoError(t, err)
	requireSubs(t, []store.SubscriptionState{repl, other}, all, "a replace adds no state")

	// Several puts in one transaction: the last one wins.
	final := orig
	final.Status = "requested"
	err = s.InTx(ctx, func(tx store.Tx) error {
		for _, st := range []store.SubscriptionState{orig, repl, final} {
			if err := tx.PutSubscription(ctx, st); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	requireSubStored(t, s, final, "last put wins")
}

// testSubscriptionOwner: the owner of an id is recorded by every put and
// outlives a delete, also one in the same transaction.
func testSubscriptionOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.SubscriptionOwner(ctx, "never-was")
	require.ErrorIs(t, err, store.ErrNotFound)
	a := sub("a")
	putSubs(t, s, a)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.PutSubscription(ctx, sub("b")))
		o, err := tx.SubscriptionOwner(ctx, "b")
		require.NoError(t, err)
		require.Equal(t, store.SubscriptionOwner{Client: "client-a", Context: "patient/pat-1"}, o, "a Tx sees its own put")
		require.NoError(t, tx.DeleteSubscription(ctx, "b"))
		return tx.DeleteSubscription(ctx, "a")
	}))
	for _, id := range []string{"a", "b"} {
		o, err := s.SubscriptionOwner(ctx, id)
		require.NoError(t, err, id)
		require.Equal(t, store.SubscriptionOwner{Client: "client-a", Context: "patient/pat-1"}, o, id)
	}
	a.Owner, a.Context = "client-b", "system"
	putSubs(t, s, a)
	o, err := s.SubscriptionOwner(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, store.SubscriptionOwner{Client: "client-b", Context: "system"}, o, "the last put names the owner")
}

// testSubscriptionRedefined: a put that changes the topic, the filters or
// the endpoint acknowledges the events queued so far; other changes keep
// the cursor.
func testSubscriptionRedefined(t *testing.T, s store.Store) {
	ctx := t.Context()
	st := sub("r")
	putSubs(t, s, st)
	acknowledged := func() int64 {
		n, err := s.Acknowledged(ctx, "r")
		require.NoError(t, err)
		return n
	}
	appendEvents(t, s, event("r", "e1", 1), event("r", "e2", 1))
	st.Status, st.Content = "error", "full-resource"
	putSubs(t, s, st)
	require.Zero(t, acknowledged(), "same definition: the events still wait")
	for i, change := range []func(*store.SubscriptionState){
		func(st *store.SubscriptionState) { st.Endpoint = endpointB },
		func(st *store.SubscriptionState) { st.Filters = st.Filters[:1] },
		func(st *store.SubscriptionState) { st.Topic = topicB },
	} {
		appendEvents(t, s, event("r", "e3", int64(i+1)))
		change(&st)
		putSubs(t, s, st)
		require.Equal(t, int64(3+i), acknowledged(), "change %d", i)
	}
}

func testSubscriptionDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := sub("a"), sub("b")
	putSubs(t, s, a, b)

	err := s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "a") })
	require.NoError(t, err)
	requireSubAbsent(t, s, "a", "deleted")
	requireSubStored(t, s, b, "the other state stays")
	all, err := s.Subscriptions(ctx, store.SubscriptionFilter{})
	require.NoError(t, err)
	requireSubs(t, []store.SubscriptionState{b}, all)

	err = s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.DeleteSubscription(ctx, "a"), "deleting again")
		require.NoError(t, tx.DeleteSubscription(ctx, "never-was"), "deleting an absent state")
		return nil
	})
	require.NoError(t, err)
	requireSubStored(t, s, b)

	// Put then delete in one transaction leaves nothing; delete then put
	// leaves the put.
	c := sub("c")
	err = s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.PutSubscription(ctx, c))
		require.NoError(t, tx.DeleteSubscription(ctx, "c"))
		requireSubAbsent(t, tx, "c", "Tx sees its own delete")
		require.NoError(t, tx.DeleteSubscription(ctx, "b"))
		b2 := b
		b2.Status = "off"
		require.NoError(t, tx.PutSubscription(ctx, b2))
		requireSubStored(t, tx, b2, "Tx sees its put after its delete")
		return nil
	})
	require.NoError(t, err)
	requireSubAbsent(t, s, "c", "put then deleted")
	b.Status = "off"
	requireSubStored(t, s, b, "deleted then put")
}

func testSubscriptionRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, c := sub("a"), sub("c")
	putSubs(t, s, a, c)
	resource := ver("Subscription", "b", 1)

	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.Put(ctx, resource))
		require.NoError(t, tx.PutSubscription(ctx, sub("b")))
		a2 := a
		a2.Status, a2.Error = "error", "changed"
		require.NoError(t, tx.PutSubscription(ctx, a2))
		require.NoError(t, tx.DeleteSubscription(ctx, "c"))
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	require.ErrorIs(t, err, errBoom, "InTx returns fn's error")

	requireSubAbsent(t, s, "b", "a rolled-back put")
	requireSubStored(t, s, a, "a rolled-back replace")
	requireSubStored(t, s, c, "a rolled-back delete")
	all, err := s.Subscriptions(ctx, store.SubscriptionFilter{})
	require.NoError(t, err)
	requireSubs(t, []store.SubscriptionState{a, c}, all)
	_, err = s.Current(ctx, "Subscription", "b")
	require.ErrorIs(t, err, store.ErrNotFound, "the resource version rolled back with the state")

	// The resource and its state commit together.
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, resource); err != nil {
			return err
		}
		return tx.PutSubscription(ctx, sub("b"))
	})
	require.NoError(t, err)
	requireSubStored(t, s, sub("b"), "committed with the resource")
	got, err := s.Current(ctx, "Subscription", "b")
	require.NoError(t, err)
	requireVersion(t, resource, got)
}

func testSubscriptionTxSeesOwnWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, c := sub("a"), sub("c")
	putSubs(t, s, a, c)
	a2, b := a, sub("b")
	a2.Status, a2.Filters = "off", []string{"Encounter?class=EMER"}
	b.Status = "requested"

	// outside reads committed states from another goroutine while the
	// transaction is open.
	type outsideView struct {
		a, b       store.SubscriptionState
		aErr, bErr error
		all        []store.SubscriptionState
		allErr     error
	}
	outside := func() outsideView {
		ch := make(chan outsideView, 1)
		go func() {
			var o outsideView
			o.a, o.aErr = s.Subscription(ctx, "a")
			o.b, o.bErr = s.Subscription(ctx, "b")
			o.all, o.allErr = s.Subscriptions(ctx, store.SubscriptionFilter{})
			ch <- o
		}()
		return await(t, ch, "a read outside an open transaction (readers must not wait for writers)")
	}

	err := s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.PutSubscription(ctx, b))
		require.NoError(t, tx.PutSubscription(ctx, a2))
		require.NoError(t, tx.DeleteSubscription(ctx, "c"))

		requireSubStored(t, tx, b, "Tx sees its own insert")
		requireSubStored(t, tx, a2, "Tx sees its own replace")
		requireSubAbsent(t, tx, "c", "Tx sees its own delete")
		all, err := tx.Subscriptions(ctx, store.SubscriptionFilter{})
		require.NoError(t, err)
		requireSubs(t, []store.SubscriptionState{a2, b}, all, "Tx.Subscriptions")
		// Filters apply to the pending states, not the committed ones.
		got, err := tx.Subscriptions(ctx, store.SubscriptionFilter{Status: []string{"active"}})
		require.NoError(t, err)
		require.Empty(t, got, "Tx.Subscriptions by the replaced status")
		got, err = tx.Subscriptions(ctx, store.SubscriptionFilter{Status: []string{"off", "requested"}})
		require.NoError(t, err)
		requireSubs(t, []store.SubscriptionState{a2, b}, got, "Tx.Subscriptions by the new statuses")

		o := outside()
		require.NoError(t, o.aErr)
		requireSub(t, a, o.a, "outside: an uncommitted replace is invisible")
		require.ErrorIs(t, o.bErr, store.ErrNotFound, "outside: an uncommitted insert is invisible")
		require.NoError(t, o.allErr)
		requireSubs(t, []store.SubscriptionState{a, c}, o.all, "outside: Subscriptions")
		return nil
	})
	require.NoError(t, err)

	o := outside()
	require.NoError(t, o.aErr)
	requireSub(t, a2, o.a, "visible after commit")
	require.NoError(t, o.bErr)
	requireSub(t, b, o.b, "visible after commit")
	require.NoError(t, o.allErr)
	requireSubs(t, []store.SubscriptionState{a2, b}, o.all, "after commit")
}

// subscriptionsFixture stores states whose ids exercise byte ordering:
//
//	id    owner  status     topic   endpoint
//	-s    c1     active     topicA  endpointA
//	1     c2     requested  topicA  endpointB
//	A     c1     error      topicB  endpointA
//	B     c2     off        topicA  endpointA
//	a     c1     active     topicB  endpointB
//	x.y   c3     active     topicA  endpointC
func subscriptionsFixture(t *testing.T, s store.Store) map[string]store.SubscriptionState {
	t.Helper()
	mk := func(id, owner, status, topic, endpoint string) store.SubscriptionState {
		st := sub(id)
		st.Owner, st.Status, st.Topic, st.Endpoint = owner, status, topic, endpoint
		if id == "a" {
			st.Context = "user/Practitioner/1"
		}
		st.Filters = []string{"Encounter?patient=Patient/" + id}
		st.PatientKey = "Patient/" + id
		if id == "1" || id == "B" {
			st.Filters, st.PatientKey = nil, "" // not pinned
		}
		return st
	}
	states := []store.SubscriptionState{
		mk("-s", "c1", "active", topicA, endpointA),
		mk("1", "c2", "requested", topicA, endpointB),
		mk("A", "c1", "error", topicB, endpointA),
		mk("B", "c2", "off", topicA, endpointA),
		mk("a", "c1", "active", topicB, endpointB),
		mk("x.y", "c3", "active", topicA, endpointC),
	}
	// Stored out of order, so order must come from the store.
	putSubs(t, s, states[3], states[5], states[0], states[2], states[4], states[1])
	out := make(map[string]store.SubscriptionState)
	for _, st := range states {
		out[st.ID] = st
	}
	return out
}

func testSubscriptionsFilter(t *testing.T, s store.Store) {
	all := subscriptionsFixture(t, s)
	pickSubs := func(ids ...string) []store.SubscriptionState {
		out := make([]store.SubscriptionState, len(ids))
		for i, id := range ids {
			out[i] = all[id]
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.SubscriptionFilter
		want []string
	}{
		{"no filter: all, ordered by id bytewise", store.SubscriptionFilter{}, []string{"-s", "1", "A", "B", "a", "x.y"}},
		{"owner", store.SubscriptionFilter{Owner: "c1"}, []string{"-s", "A", "a"}},
		{"owner is case-sensitive", store.SubscriptionFilter{Owner: "C1"}, nil},
		{"owner is exact", store.SubscriptionFilter{Owner: "c"}, nil},
		{"one status", store.SubscriptionFilter{Status: []string{"active"}}, []string{"-s", "a", "x.y"}},
		{"any of the statuses", store.SubscriptionFilter{Status: []string{"requested", "off"}}, []string{"1", "B"}},
		{"empty status list matches all", store.SubscriptionFilter{Status: []string{}}, []string{"-s", "1", "A", "B", "a", "x.y"}},
		{"unknown status", store.SubscriptionFilter{Status: []string{"on"}}, nil},
		{"topic", store.SubscriptionFilter{Topic: topicA}, []string{"-s", "1", "B", "x.y"}},
		{"topic with version", store.SubscriptionFilter{Topic: topicB}, []string{"A", "a"}},
		{"topic is exact", store.SubscriptionFilter{Topic: "http://example.org/fhir/SubscriptionTopic"}, nil},
		{"any of topics", store.SubscriptionFilter{Topics: []string{topicA, topicB}}, []string{"-s", "1", "A", "B", "a", "x.y"}},
		{"any of topics, one unknown", store.SubscriptionFilter{Topics: []string{"http://example.org/none", topicB}}, []string{"A", "a"}},
		{"endpoint", store.SubscriptionFilter{Endpoint: endpointA}, []string{"-s", "A", "B"}},
		{"endpoint is exact, not a prefix", store.SubscriptionFilter{Endpoint: "https://hooks.example.org/"}, nil},
		{"ids", store.SubscriptionFilter{IDs: []string{"x.y", "A", "-s"}}, []string{"-s", "A", "x.y"}},
		{"absent ids, and case matters", store.SubscriptionFilter{IDs: []string{"nope", "X.Y", "b"}}, nil},
		{"repeated id", store.SubscriptionFilter{IDs: []string{"B", "B"}}, []string{"B"}},
		{"owner and context", store.SubscriptionFilter{Owner: "c1", Context: "patient/pat-1"}, []string{"-s", "A"}},
		{"context is exact", store.SubscriptionFilter{Owner: "c1", Context: "user/Practitioner"}, nil},
		{"owner and status", store.SubscriptionFilter{Owner: "c1", Status: []string{"active"}}, []string{"-s", "a"}},
		{"topic, endpoint and statuses", store.SubscriptionFilter{Topic: topicA, Endpoint: endpointA, Status: []string{"active", "off"}}, []string{"-s", "B"}},
		{"owner and topic, disjoint", store.SubscriptionFilter{Owner: "c2", Topic: topicB}, nil},
		{"everything", store.SubscriptionFilter{Owner: "c1", Status: []string{"active", "error"}, Topic: topicB, Endpoint: endpointA, IDs: []string{"A", "a", "-s"}}, []string{"A"}},
		{"patient keys unset: no patient filtering", store.SubscriptionFilter{PatientKeys: []string{"Patient/a"}}, []string{"-s", "1", "A", "B", "a", "x.y"}},
		{"by patient without keys: unpinned only", store.SubscriptionFilter{ByPatient: true}, []string{"1", "B"}},
		{"by patient, empty keys: unpinned only", store.SubscriptionFilter{ByPatient: true, PatientKeys: []string{}}, []string{"1", "B"}},
		{"by patient: unpinned and pinned to the keys", store.SubscriptionFilter{ByPatient: true, PatientKeys: []string{"Patient/a", "Patient/x.y", "Patient/nobody"}}, []string{"1", "B", "a", "x.y"}},
		{"patient keys are exact", store.SubscriptionFilter{ByPatient: true, PatientKeys: []string{"patient/a", "a", "Patient/A "}}, []string{"1", "B"}},
		{"by patient with topic and status", store.SubscriptionFilter{ByPatient: true, PatientKeys: []string{"Patient/-s", "Patient/A"}, Topic: topicA, Status: []string{"active", "requested", "error"}}, []string{"-s", "1"}},
	} {
		got, err := s.Subscriptions(t.Context(), tc.f)
		require.NoError(t, err, tc.name)
		requireSubs(t, pickSubs(tc.want...), got, tc.name)
		n, err := s.CountSubscriptions(t.Context(), tc.f)
		require.NoError(t, err, tc.name)
		require.Equal(t, len(tc.want), n, "count: %s", tc.name)
		// The same through a transaction, where it is the first statement.
		require.NoError(t, s.InTx(t.Context(), func(tx store.Tx) error {
			got, err := tx.Subscriptions(t.Context(), tc.f)
			require.NoError(t, err, tc.name)
			requireSubs(t, pickSubs(tc.want...), got, tc.name, " in a tx")
			return nil
		}), tc.name)
	}
}

func testSubscriptionInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		tweak func(*store.SubscriptionState)
	}{
		{"unknown status", func(st *store.SubscriptionState) { st.Status = "on" }},
		{"no status", func(st *store.SubscriptionState) { st.Status = "" }},
		{"unknown content", func(st *store.SubscriptionState) { st.Content = "everything" }},
		{"no content", func(st *store.SubscriptionState) { st.Content = "" }},
		{"negative timeout", func(st *store.SubscriptionState) { st.Timeout = -time.Second }},
		{"negative max count", func(st *store.SubscriptionState) { st.MaxCount = -1 }},
	} {
		st := sub("bad")
		tc.tweak(&st)
		err := s.InTx(ctx, func(tx store.Tx) error { return tx.PutSubscription(ctx, st) })
		require.Error(t, err, tc.name)
		require.NotErrorIs(t, err, store.ErrConflict, "%s: an invalid state is not a conflict to retry", tc.name)
		requireSubAbsent(t, s, "bad", tc.name)
	}
}

func testEndpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.Endpoints(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "a new store has no allow-list")

	zone := time.FixedZone("UTC+09:00", 9*3600)
	mk := func(id, prefix string, private bool, note string, ms int) store.AllowedEndpoint {
		return store.AllowedEndpoint{ID: id, URLPrefix: prefix, AllowPrivateNetwork: private, Note: note,
			CreatedAt: at(ms, ms).In(zone)}
	}
	// Ids sort in another order than prefixes do.
	e1 := mk("e1", "https://b.example.org/", false, "", 1)
	e2 := mk("e2", "https://a.example.org/hooks/", true, "internal relay — Zoë's team", 2)
	e3 := mk("e3", "https://A.example.org/", false, "upper case sorts first", 3)
	e4 := mk("e4", "https://a.example.org/", false, "a prefix of e2's", 4)
	for _, e := range []store.AllowedEndpoint{e1, e2, e3, e4} {
		require.NoError(t, s.AddEndpoint(ctx, e), e.ID)
	}
	requireEndpoints := func(want []store.AllowedEndpoint, msg string) {
		t.Helper()
		got, err := s.Endpoints(ctx)
		require.NoError(t, err, msg)
		require.Len(t, got, len(want), msg)
		for i := range want {
			require.Equal(t, want[i].ID, got[i].ID, "%s [%d]", msg, i)
			require.Equal(t, want[i].URLPrefix, got[i].URLPrefix, "%s [%d]", msg, i)
			require.Equal(t, want[i].AllowPrivateNetwork, got[i].AllowPrivateNetwork, "%s [%d]", msg, i)
			require.Equal(t, want[i].Note, got[i].Note, "%s [%d]", msg, i)
			require.Truef(t, want[i].CreatedAt.Equal(got[i].CreatedAt), "%s [%d] CreatedAt: want %s, got %s",
				msg, i, want[i].CreatedAt, got[i].CreatedAt)
		}
	}
	requireEndpoints([]store.AllowedEndpoint{e3, e4, e2, e1}, "ordered by URLPrefix bytewise")

	dup := mk("e5", e2.URLPrefix, false, "same prefix", 5)
	require.ErrorIs(t, s.AddEndpoint(ctx, dup), store.ErrConflict, "a duplicate prefix")
	dupID := mk("e1", "https://c.example.org/", false, "same id", 6)
	require.ErrorIs(t, s.AddEndpoint(ctx, dupID), store.ErrConflict, "a duplicate id")
	requireEndpoints([]store.AllowedEndpoint{e3, e4, e2, e1}, "conflicts add nothing")

	require.NoError(t, s.RemoveEndpoint(ctx, "e2"))
	require.ErrorIs(t, s.RemoveEndpoint(ctx, "e2"), store.ErrNotFound, "removing again")
	require.ErrorIs(t, s.RemoveEndpoint(ctx, "nope"), store.ErrNotFound, "removing an absent id")
	requireEndpoints([]store.AllowedEndpoint{e3, e4, e1}, "after remove")

	// The removed prefix may be added again, under another id.
	require.NoError(t, s.AddEndpoint(ctx, dup))
	requireEndpoints([]store.AllowedEndpoint{e3, e4, dup, e1}, "prefix re-added")
}

func testConcurrentAddEndpoint(t *testing.T, s store.Store) {
	const n = 6
	start := make(chan struct{})
	results := make(chan error, n)
	for i := range n {
		go func() {
			<-start
			results <- s.AddEndpoint(t.Context(), store.AllowedEndpoint{
				ID: fmt.Sprint("e", i), URLPrefix: "https://hooks.example.org/", CreatedAt: at(i, 0)})
		}()
	}
	close(start)
	errs := make([]error, n)
	for i := range n {
		errs[i] = await(t, results, "concurrent AddEndpoint")
	}
	oneWins(t, errs)
	list, err := s.Endpoints(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Client(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	list, err := s.Clients(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "a new store has no clients")

	requireClient := func(want, got store.Client, msg string) {
		t.Helper()
		require.Equal(t, want.ClientID, got.ClientID, msg)
		require.Equal(t, want.Status, got.Status, msg)
		require.Equal(t, want.MaxPayload, got.MaxPayload, msg)
		require.Equal(t, want.ScopeCeiling, got.ScopeCeiling, msg)
		require.Truef(t, want.UpdatedAt.Equal(got.UpdatedAt), "%s UpdatedAt: want %s, got %s", msg, want.UpdatedAt, got.UpdatedAt)
	}
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	b := store.Client{ClientID: "client-b", Status: "active", MaxPayload: "full-resource",
		ScopeCeiling: "system/Subscription.crus system/*.rs", UpdatedAt: at(1, 1).In(zone)}
	created, err := s.PutClient(ctx, b)
	require.NoError(t, err)
	require.True(t, created, "first put creates")
	got, err := s.Client(ctx, "client-b")
	require.NoError(t, err)
	requireClient(b, got, "after create")

	b2 := store.Client{ClientID: "client-b", Status: "suspended", MaxPayload: "empty", UpdatedAt: at(2, 2)}
	created, err = s.PutClient(ctx, b2)
	require.NoError(t, err)
	require.False(t, created, "second put replaces")
	got, err = s.Client(ctx, "client-b")
	require.NoError(t, err)
	requireClient(b2, got, "after replace")

	others := []store.Client{
		{ClientID: "client-a", Status: "active", MaxPayload: "id-only", UpdatedAt: at(3, 3)},
		{ClientID: "client-A", Status: "active", MaxPayload: "empty", ScopeCeiling: "system/Subscription.r", UpdatedAt: at(4, 4)},
		{ClientID: "-x", Status: "suspended", MaxPayload: "id-only", UpdatedAt: at(5, 5)},
	}
	for _, c := range others {
		created, err := s.PutClient(ctx, c)
		require.NoError(t, err, c.ClientID)
		require.True(t, created, c.ClientID)
	}
	list, err = s.Clients(ctx)
	require.NoError(t, err)
	want := []store.Client{others[2], others[1], others[0], b2}
	require.Len(t, list, len(want))
	for i := range want {
		requireClient(want[i], list[i], fmt.Sprintf("Clients ordered by ClientID bytewise [%d]", i))
	}

	for _, bad := range []store.Client{
		{ClientID: "client-b", Status: "blocked", MaxPayload: "empty", UpdatedAt: at(6, 0)},
		{ClientID: "client-b", Status: "", MaxPayload: "empty", UpdatedAt: at(6, 0)},
		{ClientID: "client-b", Status: "active", MaxPayload: "everything", UpdatedAt: at(6, 0)},
		{ClientID: "client-b", Status: "active", MaxPayload: "", UpdatedAt: at(6, 0)},
		{ClientID: "client-new", Status: "", MaxPayload: "", UpdatedAt: at(6, 0)},
	} {
		_, err := s.PutClient(ctx, bad)
		require.Error(t, err, "%+v", bad)
		require.NotErrorIs(t, err, store.ErrConflict, "%+v", bad)
	}
	got, err = s.Client(ctx, "client-b")
	require.NoError(t, err)
	requireClient(b2, got, "invalid puts change nothing")
	_, err = s.Client(ctx, "client-new")
	require.ErrorIs(t, err, store.ErrNotFound, "an invalid put creates nothing")
}

func testUnpinSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	const url = "http://example.org/fhir/SubscriptionTopic/encounter-start"
	mk := func(id, topic, key string) store.SubscriptionState {
		st := sub(id)
		st.Topic, st.PatientKey = topic, key
		return st
	}
	states := []store.SubscriptionState{
		mk("bare", url, "Patient/1"),
		mk("versioned", url+"|2.0", "Patient/2"),
		mk("unpinned", url, ""),
		mk("longer-url", url+"-x", "Patient/3"), // another topic
		mk("other", "http://example.org/t|1", "Patient/4"),
	}
	putSubs(t, s, states...)
	var n int
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.UnpinSubscriptions(ctx, url)
		if err != nil {
			return err
		}
		got, err := tx.Subscription(ctx, "versioned")
		require.NoError(t, err)
		require.Empty(t, got.PatientKey, "the tx sees its own unpinning")
		return nil
	}))
	require.Equal(t, 2, n)
	want := map[string]string{"bare": "", "versioned": "", "unpinned": "", "longer-url": "Patient/3", "other": "Patient/4"}
	for _, st := range states {
		got, err := s.Subscription(ctx, st.ID)
		require.NoError(t, err)
		require.Equal(t, want[st.ID], got.PatientKey, st.ID)
		st.PatientKey = want[st.ID]
		requireSub(t, st, got, "only the key changes: ", st.ID)
	}
}
