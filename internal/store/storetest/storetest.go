// Package storetest is the conformance suite for store.Store: the executable
// form of the contract documented in package store. Every implementation's
// tests call Run.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// waitLimit bounds every wait on another goroutine, so that a broken
// implementation fails the test instead of hanging it. It is a deadline,
// never a pause: the tests synchronise through channels.
const waitLimit = 20 * time.Second

// Run runs the suite. newStore must return a new, empty store for each
// subtest and release it (t.Cleanup) when that subtest ends. Subtests run in
// parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"PutVersionsAndRead", testPutVersionsAndRead},
		{"HistoryPaging", testHistoryPaging},
		{"Changes", testChanges},
		{"NotFound", testNotFound},
		{"PutWrongVersionConflicts", testPutWrongVersionConflicts},
		{"SeveralPutsInOneTx", testSeveralPutsInOneTx},
		{"DeleteMarker", testDeleteMarker},
		{"RecreateAfterDelete", testRecreateAfterDelete},
		{"TypesAreSeparate", testTypesAreSeparate},
		{"RollbackWritesNothing", testRollbackWritesNothing},
		{"TxSeesOwnWritesOthersDoNot", testTxSeesOwnWrites},
		{"LockReturnsCurrent", testLockReturnsCurrent},
		{"LockSerialisesUpdates", testLockSerialisesUpdates},
		{"ConcurrentCreatorsOneWins", testConcurrentCreators},
		{"ConcurrentLockingCreatorsOneWins", testConcurrentLockingCreators},
		{"ConcurrentUpdatersOneWins", testConcurrentUpdaters},
		{"SearchOrderByteWise", testSearchOrder},
		{"SearchIDs", testSearchIDs},
		{"SearchLastUpdated", testSearchLastUpdated},
		{"SearchPatient", testSearchPatient},
		{"SearchPaging", testSearchPaging},
		{"SearchOrderBy", testSearchOrderBy},
		{"SearchCombined", testSearchCombined},
		{"SearchMatchAndIndex", testSearchMatchAndIndex},
		{"SearchWithin", testSearchWithin},
		{"SearchNarrowSamePages", testSearchNarrowSamePages},
		{"LockKeySerialisesCheckThenCreate", testLockKeySerialisesCheckThenCreate},
		{"BodyBytesExact", testBodyBytesExact},
		{"LastUpdatedMilliseconds", testLastUpdatedMilliseconds},
		// subscriptions.go
		{"SubscriptionRoundTrip", testSubscriptionRoundTrip},
		{"SubscriptionReplace", testSubscriptionReplace},
		{"SubscriptionDelete", testSubscriptionDelete},
		{"SubscriptionOwner", testSubscriptionOwner},
		{"SubscriptionRedefined", testSubscriptionRedefined},
		{"ConfigGeneration", testConfigGeneration},
		{"SubscriptionRollback", testSubscriptionRollback},
		{"SubscriptionTxSeesOwnWritesOthersDoNot", testSubscriptionTxSeesOwnWrites},
		{"SubscriptionsFilter", testSubscriptionsFilter},
		{"UnpinSubscriptions", testUnpinSubscriptions},
		{"SubscriptionInvalid", testSubscriptionInvalid},
		{"Endpoints", testEndpoints},
		{"ConcurrentAddEndpointOneWins", testConcurrentAddEndpoint},
		{"Clients", testClients},
		{"AdminAuditLog", testAdminAuditLog},
		// events.go
		{"EventNumbering", testEventNumbering},
		{"EventRollback", testEventRollback},
		{"EventRollbackWhileOthersWait", testEventRollbackWhileOthersWait},
		{"EventConcurrentAppends", testEventConcurrentAppends},
		{"EventSubscriptionsIndependent", testEventSubscriptionsIndependent},
		{"EventsRange", testEventsRange},
		{"EventNotFound", testEventNotFound},
		{"EventSubscriptionReplace", testEventSubscriptionReplace},
		{"EventSubscriptionDelete", testEventSubscriptionDelete},
		{"EventInvalid", testEventInvalid},
		{"AppendEventsBatch", testAppendEventsBatch},
		{"AppendEventsAtCommit", testAppendEventsAtCommit},
		{"AppendEventsAtCommitFails", testAppendEventsAtCommitFails},
		{"EventIncludes", testEventIncludes},
		{"EventIncludesResolved", testEventIncludesResolved},
		{"AppendEventsConcurrentOverlap", testAppendEventsConcurrentOverlap},
		// retention.go
		{"Acknowledge", testAcknowledge},
		{"EventPrune", testEventPrune},
		{"EventPruneLimit", testEventPruneLimit},
		{"EventPruneTx", testEventPruneTx},
		{"EventPruneConcurrent", testEventPruneConcurrent},
		// delivery.go
		{"QueueHandshake", testQueueHandshake},
		{"QueueEvents", testQueueEvents},
		{"QueueFailureBackoff", testQueueFailureBackoff},
		{"QueueStateChanges", testQueueStateChanges},
		{"QueueErrorSince", testQueueErrorSince},
		{"QueueKeepAndRelease", testQueueKeepAndRelease},
		{"QueueOrderAndLimit", testQueueOrderAndLimit},
		{"QueueOwnerShares", testQueueOwnerShares},
		{"QueueOwnerSharesLongQueue", testQueueOwnerSharesLongQueue},
		{"QueueOwnerCapCountsCancelledLeases", testQueueOwnerCapCountsCancelledLeases},
		{"QueueOwnerCapCountsDeletedLeases", testQueueOwnerCapCountsDeletedLeases},
		{"QueueOwnerShareIsPerLaunchContext", testQueueOwnerShareIsPerLaunchContext},
		{"QueueOwnerTurnsAfterLeases", testQueueOwnerTurnsAfterLeases},
		{"QueueConcurrentClaims", testQueueConcurrentClaims},
		{"QueueClaimSkipsOpenWrite", testQueueClaimSkipsOpenWrite},
		{"QueueWake", testQueueWake},
		{"QueueStats", testQueueStats},
		{"QueueClaimWithEvents", testQueueClaimWithEvents},
		{"QueueDeferral", testQueueDeferral},
		// bindings.go
		{"QueueSkipsWebsocket", testQueueSkipsWebsocket},
		{"BindingHolds", testBindingHolds},
		// attempts.go
		{"AttemptLog", testAttemptLog},
		{"AttemptPrune", testAttemptPrune},
		{"DeliveryOverviews", testDeliveryOverviews},
		{"RetryNow", testRetryNow},
		{"AppendAudit", testAppendAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// base is the time the fixtures count from; callers hand the store
// millisecond-precision times.
var base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns base plus n minutes and ms milliseconds.
func at(n, ms int) time.Time {
	return base.Add(time.Duration(n)*time.Minute + time.Duration(ms)*time.Millisecond)
}

// ver builds version n of typ/id: a create for 1, an update after.
func ver(typ, id string, n int64, patients ...string) store.Version {
	m := store.MethodUpdate
	if n == 1 {
		m = store.MethodCreate
	}
	return store.Version{
		Type:        typ,
		ID:          id,
		VersionID:   n,
		LastUpdated: at(int(n), 7),
		Method:      m,
		Body:        body(typ, id, n),
		Patients:    patients,
	}
}

// deleted builds delete marker n of typ/id.
func deleted(typ, id string, n int64) store.Version {
	return store.Version{
		Type:        typ,
		ID:          id,
		VersionID:   n,
		LastUpdated: at(int(n), 9),
		Method:      store.MethodDelete,
		Deleted:     true,
	}
}

func body(typ, id string, n int64) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, n)
}

// put commits each version in a transaction of its own.
func put(t *testing.T, s store.Store, vs ...store.Version) {
	t.Helper()
	for _, v := range vs {
		err := s.InTx(t.Context(), func(tx store.Tx) error { return tx.Put(t.Context(), v) })
		require.NoError(t, err, "put %s/%s v%d", v.Type, v.ID, v.VersionID)
	}
}

// requireVersion compares versions field by field: times with Equal, a nil
// and an empty Patients alike.
func requireVersion(t *testing.T, want, got store.Version, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	require.Equal(t, want.Type, got.Type, "Type %s", msg)
	require.Equal(t, want.ID, got.ID, "ID %s", msg)
	require.Equal(t, want.VersionID, got.VersionID, "VersionID %s", msg)
	require.Truef(t, want.LastUpdated.Equal(got.LastUpdated), "LastUpdated %s: want %s, got %s", msg, want.LastUpdated, got.LastUpdated)
	require.Equal(t, want.Method, got.Method, "Method %s", msg)
	require.Equal(t, want.Deleted, got.Deleted, "Deleted %s", msg)
	if want.Deleted {
		require.Nil(t, got.Body, "Body of a delete marker %s", msg)
	} else {
		require.Truef(t, bytes.Equal(want.Body, got.Body), "Body %s:\nwant %q\ngot  %q", msg, want.Body, got.Body)
	}
	if len(want.Patients) == 0 {
		require.Empty(t, got.Patients, "Patients %s", msg)
	} else {
		require.Equal(t, want.Patients, got.Patients, "Patients %s", msg)
	}
}

func requireVersions(t *testing.T, want, got []store.Version, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	require.Equal(t, keys(want), keys(got), msg)
	for i := range want {
		requireVersion(t, want[i], got[i], msg, fmt.Sprintf(" [%d]", i))
	}
}

// keys lists "type/id/vN" for readable failure messages.
func keys(vs []store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s/%s/v%d", v.Type, v.ID, v.VersionID)
	}
	return out
}

func ids(vs []store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

// await receives from ch or fails the test after waitLimit.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out after %s waiting for %s", waitLimit, what)
		panic("unreachable")
	}
}

func testPing(t *testing.T, s store.Store) {
	require.NoError(t, s.Ping(t.Context()))
}

func testPutVersionsAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := ver("Patient", "p1", 1, "p1")
	v2 := ver("Patient", "p1", 2, "p1")
	v3 := ver("Patient", "p1", 3, "p1")
	put(t, s, v1, v2, v3)

	got, err := s.Current(ctx, "Patient", "p1")
	require.NoError(t, err)
	requireVersion(t, v3, got, "Current")

	for _, want := range []store.Version{v1, v2, v3} {
		got, err := s.Version(ctx, "Patient", "p1", want.VersionID)
		require.NoError(t, err)
		requireVersion(t, want, got, "Version ", want.VersionID)
	}

	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{v3, v2, v1}, hist, "History newest first")
}

func testHistoryPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	var vs []store.Version
	for n := int64(1); n <= 5; n++ {
		vs = append(vs, ver("Observation", "o1", n))
	}
	put(t, s, vs...)
	v := func(n int) store.Version { return vs[n-1] }

	for _, tc := range []struct {
		q    store.HistoryQuery
		want []store.Version
	}{
		{store.HistoryQuery{}, []store.Version{v(5), v(4), v(3), v(2), v(1)}},
		{store.HistoryQuery{Count: 2}, []store.Version{v(5), v(4)}},
		{store.HistoryQuery{Before: 4}, []store.Version{v(3), v(2), v(1)}},
		{store.HistoryQuery{Before: 4, Count: 2}, []store.Version{v(3), v(2)}},
		{store.HistoryQuery{Before: 2, Count: 2}, []store.Version{v(1)}},
		{store.HistoryQuery{Before: 99}, []store.Version{v(5), v(4), v(3), v(2), v(1)}},
		{store.HistoryQuery{Count: 99}, []store.Version{v(5), v(4), v(3), v(2), v(1)}},
		{store.HistoryQuery{Before: 1}, nil}, // the resource exists: an empty page, not ErrNotFound
		// MaxBytes ends with the version whose body reaches it.
		{store.HistoryQuery{MaxBytes: 1}, []store.Version{v(5)}},
		{store.HistoryQuery{MaxBytes: int64(len(v(5).Body) + 1)}, []store.Version{v(5), v(4)}},
		{store.HistoryQuery{MaxBytes: int64(len(v(5).Body) + len(v(4).Body))}, []store.Version{v(5), v(4)}},
		{store.HistoryQuery{Before: 4, Count: 1, MaxBytes: 1 << 20}, []store.Version{v(3)}},
	} {
		q := tc.q
		q.Type, q.ID = "Observation", "o1"
		got, err := s.History(ctx, q)
		require.NoError(t, err, "%+v", q)
		requireVersions(t, tc.want, got, fmt.Sprintf("%+v", q))
	}

	// Paging with Before = the last VersionID seen walks the whole history.
	var walked []store.Version
	q := store.HistoryQuery{Type: "Observation", ID: "o1", Count: 2}
	for {
		page, err := s.History(ctx, q)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		require.LessOrEqual(t, len(page), 2)
		walked = append(walked, page...)
		q.Before = page[len(page)-1].VersionID
	}
	requireVersions(t, []store.Version{v(5), v(4), v(3), v(2), v(1)}, walked, "paged history")
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, ver("Patient", "p1", 1))

	_, err := s.Current(ctx, "Patient", "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "Current of an absent id")
	_, err = s.Current(ctx, "Observation", "p1")
	require.ErrorIs(t, err, store.ErrNotFound, "Current of another type with the same id")
	for _, n := range []int64{0, 2, -1} {
		_, err = s.Version(ctx, "Patient", "p1", n)
		require.ErrorIs(t, err, store.ErrNotFound, "Version %d of an existing resource", n)
	}
	_, err = s.Version(ctx, "Patient", "nope", 1)
	require.ErrorIs(t, err, store.ErrNotFound, "Version of an absent id")
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "nope"})
	require.ErrorIs(t, err, store.ErrNotFound, "History of an absent id")
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "nope", Before: 5, Count: 1})
	require.ErrorIs(t, err, store.ErrNotFound, "paged History of an absent id")

	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Current(ctx, "Patient", "nope")
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.Current")
		_, err = tx.Version(ctx, "Patient", "p1", 2)
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.Version")
		_, err = tx.History(ctx, store.HistoryQuery{Type: "Patient", ID: "nope"})
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.History")
		_, err = tx.Lock(ctx, "Patient", "nope")
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.Lock")
		return nil
	})
	require.NoError(t, err)

	got, err := s.Search(ctx, store.SearchQuery{Type: "Encounter"})
	require.NoError(t, err, "Search with no match is not an error")
	require.Empty(t, got)
}

func testPutWrongVersionConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()

	// A new resource must start at 1.
	for _, n := range []int64{0, 2, -1} {
		err := s.InTx(ctx, func(tx store.Tx) error {
			err := tx.Put(ctx, ver("Patient", "new", n))
			require.ErrorIs(t, err, store.ErrConflict, "Put v%d of a new resource", n)
			return nil
		})
		require.NoError(t, err)
		_, err = s.Current(ctx, "Patient", "new")
		require.ErrorIs(t, err, store.ErrNotFound, "Put v%d must write nothing", n)
	}

	// An existing resource must go to current+1; a conflicting Put writes
	// nothing and leaves the transaction usable.
	v1 := ver("Patient", "p1", 1)
	put(t, s, v1)
	v2 := ver("Patient", "p1", 2)
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, n := range []int64{1, 3, 0} {
			bad := ver("Patient", "p1", n)
			bad.Body = []byte(`{"bad":true}`)
			require.ErrorIs(t, tx.Put(ctx, bad), store.ErrConflict, "Put v%d over v1", n)
			got, err := tx.Current(ctx, "Patient", "p1")
			require.NoError(t, err)
			requireVersion(t, v1, got, "Tx.Current after conflicting Put")
		}
		return tx.Put(ctx, v2)
	})
	require.NoError(t, err)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{v2, v1}, hist)

	// Committed data is checked too: v2 again conflicts.
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.Put(ctx, v2) })
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = s.Version(ctx, "Patient", "p1", 3)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testSeveralPutsInOneTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2, v3 := ver("Patient", "p1", 1), ver("Patient", "p1", 2), ver("Patient", "p1", 3)
	other := ver("Observation", "o1", 1, "p1")
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, v := range []store.Version{v1, v2, other, v3} {
			if err := tx.Put(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{v3, v2, v1}, hist)
	got, err := s.Current(ctx, "Observation", "o1")
	require.NoError(t, err)
	requireVersion(t, other, got)
}

func testDeleteMarker(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := ver("Patient", "p1", 1, "p1")
	del := deleted("Patient", "p1", 2)
	keep := ver("Patient", "p2", 1, "p1")
	put(t, s, v1, del, keep)

	got, err := s.Current(ctx, "Patient", "p1")
	require.NoError(t, err, "Current returns a delete marker")
	requireVersion(t, del, got)
	require.True(t, got.Deleted)
	require.Nil(t, got.Body)

	got, err = s.Version(ctx, "Patient", "p1", 2)
	require.NoError(t, err)
	requireVersion(t, del, got)
	got, err = s.Version(ctx, "Patient", "p1", 1)
	require.NoError(t, err)
	requireVersion(t, v1, got, "the version before a delete stays readable")

	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{del, v1}, hist)

	for _, q := range []store.SearchQuery{
		{Type: "Patient"},
		{Type: "Patient", IDs: []string{"p1", "p2"}},
		{Type: "Patient", Patient: "p1"},
		{Type: "Patient", LastUpdated: []store.TimeRange{{From: at(-100, 0)}}},
	} {
		res, err := s.Search(ctx, q)
		require.NoError(t, err)
		requireVersions(t, []store.Version{keep}, res, fmt.Sprintf("Search excludes delete markers: %+v", q))
	}

	err = s.InTx(ctx, func(tx store.Tx) error {
		got, err := tx.Lock(ctx, "Patient", "p1")
		require.NoError(t, err, "Lock returns a delete marker")
		requireVersion(t, del, got)
		// Deleting again is a new version too.
		return tx.Put(ctx, deleted("Patient", "p1", 3))
	})
	require.NoError(t, err)
	got, err = s.Current(ctx, "Patient", "p1")
	require.NoError(t, err)
	requireVersion(t, deleted("Patient", "p1", 3), got)
}

func testRecreateAfterDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := ver("Patient", "p1", 1, "p1")
	del := deleted("Patient", "p1", 2)
	v3 := ver("Patient", "p1", 3, "p1")
	v3.Body = []byte(`{"resourceType":"Patient","id":"p1","active":true}`)
	put(t, s, v1, del)

	err := s.InTx(ctx, func(tx store.Tx) error {
		require.ErrorIs(t, tx.Put(ctx, ver("Patient", "p1", 1)), store.ErrConflict,
			"re-creating continues the version sequence; it does not restart at 1")
		return tx.Put(ctx, v3)
	})
	require.NoError(t, err)

	got, err := s.Current(ctx, "Patient", "p1")
	require.NoError(t, err)
	requireVersion(t, v3, got)
	res, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Patient: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{v3}, res)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{v3, del, v1}, hist)
}

func testTypesAreSeparate(t *testing.T, s store.Store) {
	ctx := t.Context()
	pat := ver("Patient", "x", 1)
	obs1, obs2 := ver("Observation", "x", 1), ver("Observation", "x", 2)
	put(t, s, pat, obs1, obs2)

	got, err := s.Current(ctx, "Patient", "x")
	require.NoError(t, err)
	requireVersion(t, pat, got)
	got, err = s.Current(ctx, "Observation", "x")
	require.NoError(t, err)
	requireVersion(t, obs2, got)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "x"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{pat}, hist)
	res, err := s.Search(ctx, store.SearchQuery{Type: "Patient"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{pat}, res)
}

func testRollbackWritesNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := ver("Patient", "old", 1, "p9")
	put(t, s, old)

	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, v := range []store.Version{ver("Patient", "new", 1, "p9"), ver("Patient", "new", 2, "p9"), ver("Patient", "old", 2), deleted("Patient", "old", 3)} {
			require.NoError(t, tx.Put(ctx, v))
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	require.ErrorIs(t, err, errBoom, "InTx returns fn's error")

	_, err = s.Current(ctx, "Patient", "new")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Version(ctx, "Patient", "new", 1)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "new"})
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.Current(ctx, "Patient", "old")
	require.NoError(t, err)
	requireVersion(t, old, got)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "old"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{old}, hist)
	res, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Patient: "p9"})
	require.NoError(t, err)
	requireVersions(t, []store.Version{old}, res)

	// The rolled-back versions did not use up version numbers.
	put(t, s, ver("Patient", "new", 1), ver("Patient", "old", 2))
}

func testTxSeesOwnWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	old1 := ver("Patient", "old", 1, "p1")
	put(t, s, old1)
	n1 := ver("Patient", "new", 1, "p1")
	old2 := ver("Patient", "old", 2, "p1")

	// outside reads committed data from another goroutine while the
	// transaction is open.
	type outsideView struct {
		newErr     error
		old        store.Version
		oldErr     error
		search     []store.Version
		searchErr  error
		history    []store.Version
		historyErr error
	}
	outside := func() outsideView {
		ch := make(chan outsideView, 1)
		go func() {
			var o outsideView
			_, o.newErr = s.Current(ctx, "Patient", "new")
			o.old, o.oldErr = s.Current(ctx, "Patient", "old")
			o.search, o.searchErr = s.Search(ctx, store.SearchQuery{Type: "Patient", Patient: "p1"})
			o.history, o.historyErr = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "old"})
			ch <- o
		}()
		return await(t, ch, "a read outside an open transaction (readers must not wait for writers)")
	}

	err := s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.Put(ctx, n1))
		require.NoError(t, tx.Put(ctx, old2))

		got, err := tx.Current(ctx, "Patient", "new")
		require.NoError(t, err, "Tx.Current sees the Tx's own create")
		requireVersion(t, n1, got)
		got, err = tx.Version(ctx, "Patient", "new", 1)
		require.NoError(t, err)
		requireVersion(t, n1, got)
		got, err = tx.Current(ctx, "Patient", "old")
		require.NoError(t, err)
		requireVersion(t, old2, got, "Tx.Current sees the Tx's own update")
		hist, err := tx.History(ctx, store.HistoryQuery{Type: "Patient", ID: "old"})
		require.NoError(t, err)
		requireVersions(t, []store.Version{old2, old1}, hist)
		res, err := tx.Search(ctx, store.SearchQuery{Type: "Patient", Patient: "p1"})
		require.NoError(t, err)
		requireVersions(t, []store.Version{n1, old2}, res, "Tx.Search sees the Tx's own writes")

		o := outside()
		require.ErrorIs(t, o.newErr, store.ErrNotFound, "outside: uncommitted create is invisible")
		require.NoError(t, o.oldErr)
		requireVersion(t, old1, o.old, "outside: uncommitted update is invisible")
		require.NoError(t, o.searchErr)
		requireVersions(t, []store.Version{old1}, o.search, "outside Search")
		require.NoError(t, o.historyErr)
		requireVersions(t, []store.Version{old1}, o.history, "outside History")
		return nil
	})
	require.NoError(t, err)

	o := outside()
	require.NoError(t, o.newErr, "visible after commit")
	requireVersion(t, old2, o.old)
	requireVersions(t, []store.Version{n1, old2}, o.search)
}

func testLockReturnsCurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2 := ver("Patient", "p1", 1, "p1"), ver("Patient", "p1", 2, "p2")
	put(t, s, v1, v2)
	err := s.InTx(ctx, func(tx store.Tx) error {
		got, err := tx.Lock(ctx, "Patient", "p1")
		require.NoError(t, err)
		requireVersion(t, v2, got)
		_, err = tx.Lock(ctx, "Patient", "absent")
		require.ErrorIs(t, err, store.ErrNotFound)
		// Creating what Lock did not find works, and a second Lock in the
		// same transaction sees it.
		created := ver("Patient", "absent", 1)
		require.NoError(t, tx.Put(ctx, created))
		got, err = tx.Lock(ctx, "Patient", "absent")
		require.NoError(t, err)
		requireVersion(t, created, got)
		return nil
	})
	require.NoError(t, err)
}

// testLockSerialisesUpdates: two read-modify-write transactions on one
// resource, each Lock then Put current+1, both succeed in turn and no update
// is lost. A holds the lock while B starts; B's Lock must return A's write.
func testLockSerialisesUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, ver("Patient", "p1", 1))

	// update is the read-modify-write both transactions run.
	update := func(tx store.Tx, who string, afterLock func()) error {
		cur, err := tx.Lock(ctx, "Patient", "p1")
		if err != nil {
			return err
		}
		afterLock()
		next := ver("Patient", "p1", cur.VersionID+1)
		next.Body = fmt.Appendf(nil, `{"resourceType":"Patient","id":"p1","writer":%q,"saw":%d}`, who, cur.VersionID)
		return tx.Put(ctx, next)
	}

	aLocked := make(chan struct{})
	bStarting := make(chan struct{})
	aDone := make(chan error, 1)
	bDone := make(chan error, 1)
	go func() {
		aDone <- s.InTx(ctx, func(tx store.Tx) error {
			return update(tx, "A", func() {
				close(aLocked)
				// B starts its transaction now and, where the store
				// allows concurrent transactions, blocks in Lock.
				<-bStarting
			})
		})
	}()
	go func() {
		select {
		case <-aLocked:
		case <-ctx.Done():
		}
		close(bStarting)
		bDone <- s.InTx(ctx, func(tx store.Tx) error { return update(tx, "B", func() {}) })
	}()
	require.NoError(t, await(t, aDone, "transaction A"))
	require.NoError(t, await(t, bDone, "transaction B"))

	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	require.Equal(t, []string{"Patient/p1/v3", "Patient/p1/v2", "Patient/p1/v1"}, keys(hist))
	require.JSONEq(t, `{"resourceType":"Patient","id":"p1","writer":"A","saw":1}`, string(hist[1].Body))
	require.JSONEq(t, `{"resourceType":"Patient","id":"p1","writer":"B","saw":2}`, string(hist[0].Body), "B saw A's update")
}

// race starts n transactions together and returns their errors.
func race(t *testing.T, s store.Store, n int, fn func(i int, tx store.Tx) error) []error {
	t.Helper()
	start := make(chan struct{})
	results := make(chan error, n)
	for i := range n {
		go func() {
			<-start
			results <- s.InTx(t.Context(), func(tx store.Tx) error { return fn(i, tx) })
		}()
	}
	close(start)
	errs := make([]error, n)
	for i := range n {
		errs[i] = await(t, results, "racing transactions")
	}
	return errs
}

// oneWins checks that exactly one of errs is nil and the rest are ErrConflict.
func oneWins(t *testing.T, errs []error) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, store.ErrConflict)
	}
	require.Equal(t, 1, wins, "exactly one writer wins: %v", errs)
}

func creatorBody(i int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":"p1","creator":%d}`, i)
}

func requireOneCreator(t *testing.T, s store.Store) {
	t.Helper()
	hist, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	require.Len(t, hist, 1, "one version, from the winner")
	require.True(t, bytes.HasPrefix(hist[0].Body, []byte(`{"resourceType":"Patient","id":"p1","creator":`)))
}

func testConcurrentCreators(t *testing.T, s store.Store) {
	const n = 6
	errs := race(t, s, n, func(i int, tx store.Tx) error {
		v := ver("Patient", "p1", 1)
		v.Body = creatorBody(i)
		return tx.Put(t.Context(), v)
	})
	oneWins(t, errs)
	requireOneCreator(t, s)
}

// testConcurrentLockingCreators: creators that Lock first. Lock either
// serialises them (the losers then find the winner's version) or Put
// reports the conflict; either way exactly one creates.
func testConcurrentLockingCreators(t *testing.T, s store.Store) {
	const n = 6
	errs := race(t, s, n, func(i int, tx store.Tx) error {
		ctx := t.Context()
		if _, err := tx.Lock(ctx, "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
			if err == nil {
				return store.ErrConflict // already created by another
			}
			return err
		}
		v := ver("Patient", "p1", 1)
		v.Body = creatorBody(i)
		return tx.Put(ctx, v)
	})
	oneWins(t, errs)
	requireOneCreator(t, s)
}

// testConcurrentUpdaters: writers that read without Lock and Put current+1
// lose to whoever commits first, and nothing is overwritten.
func testConcurrentUpdaters(t *testing.T, s store.Store) {
	put(t, s, ver("Patient", "p1", 1))
	const n = 6
	errs := race(t, s, n, func(i int, tx store.Tx) error {
		v := ver("Patient", "p1", 2)
		v.Body = creatorBody(i)
		return tx.Put(t.Context(), v)
	})
	oneWins(t, errs)
	hist, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	require.Equal(t, []string{"Patient/p1/v2", "Patient/p1/v1"}, keys(hist))
}

// searchFixture stores Patients whose ids exercise byte ordering, with
// distinct lastUpdated times and compartments, plus noise that Search must
// never return: another type, a deleted resource, an old version.
//
//	id    lastUpdated  patients
//	-x    at(10)       pa
//	1     at(20)       pa, pb
//	A     at(30)       –
//	B     at(40)       pb
//	a     at(50)       pa      (version 2; version 1 was at(1) in pc)
//	x.y   at(60)       pc
func searchFixture(t *testing.T, s store.Store) map[string]store.Version {
	t.Helper()
	mk := func(id string, n int64, minute int, patients ...string) store.Version {
		v := ver("Patient", id, n, patients...)
		v.LastUpdated = at(minute, 0)
		return v
	}
	live := []store.Version{
		mk("-x", 1, 10, "pa"),
		mk("1", 1, 20, "pa", "pb"),
		mk("A", 1, 30),
		mk("B", 1, 40, "pb"),
		mk("a", 2, 50, "pa"),
		mk("x.y", 1, 60, "pc"),
	}
	// Inserted out of order, so order must come from the store.
	put(t, s,
		live[3], live[5], mk("a", 1, 1, "pc"), live[0], live[2], live[4], live[1],
		mk("gone", 1, 35, "pa", "pb", "pc"), deleted("Patient", "gone", 2),
	)
	other := ver("Observation", "0", 1, "pa", "pb", "pc")
	other.LastUpdated = at(30, 0)
	put(t, s, other)
	out := make(map[string]store.Version)
	for _, v := range live {
		out[v.ID] = v
	}
	return out
}

func pick(all map[string]store.Version, ids ...string) []store.Version {
	out := make([]store.Version, len(ids))
	for i, id := range ids {
		out[i] = all[id]
	}
	return out
}

func testSearchOrder(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	res, err := s.Search(t.Context(), store.SearchQuery{Type: "Patient"})
	require.NoError(t, err)
	want := []string{"-x", "1", "A", "B", "a", "x.y"}
	require.True(t, slices.IsSorted(want), "fixture order is Go's byte order")
	requireVersions(t, pick(all, want...), res, "Search orders by id in byte order")
}

func testSearchIDs(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	for _, tc := range []struct {
		ids  []string
		want []string
	}{
		{[]string{"a"}, []string{"a"}},
		{[]string{"x.y", "A", "-x"}, []string{"-x", "A", "x.y"}},
		{[]string{"gone", "nope", "b", "X.Y"}, nil}, // deleted, absent, and case matters
		{[]string{"B", "B"}, []string{"B"}},
	} {
		res, err := s.Search(t.Context(), store.SearchQuery{Type: "Patient", IDs: tc.ids})
		require.NoError(t, err)
		requireVersions(t, pick(all, tc.want...), res, fmt.Sprintf("IDs %q", tc.ids))
	}
}

func testSearchLastUpdated(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	for _, tc := range []struct {
		name   string
		ranges []store.TimeRange
		want   []string
	}{
		{"from is inclusive", []store.TimeRange{{From: at(30, 0)}}, []string{"A", "B", "a", "x.y"}},
		{"to is exclusive", []store.TimeRange{{To: at(30, 0)}}, []string{"-x", "1"}},
		{"closed-open", []store.TimeRange{{From: at(20, 0), To: at(50, 0)}}, []string{"1", "A", "B"}},
		{"a millisecond matters", []store.TimeRange{{From: at(20, 1), To: at(50, 1)}}, []string{"A", "B", "a"}},
		{"empty interval", []store.TimeRange{{From: at(30, 0), To: at(30, 0)}}, nil},
		{"unbounded", []store.TimeRange{{}}, []string{"-x", "1", "A", "B", "a", "x.y"}},
		{"ranges are ANDed", []store.TimeRange{{From: at(15, 0)}, {To: at(45, 0)}}, []string{"1", "A", "B"}},
		{"exclude", []store.TimeRange{{From: at(20, 0), To: at(50, 0), Exclude: true}}, []string{"-x", "a", "x.y"}},
		{"exclude from", []store.TimeRange{{From: at(40, 0), Exclude: true}}, []string{"-x", "1", "A"}},
		{"exclude to", []store.TimeRange{{To: at(40, 0), Exclude: true}}, []string{"B", "a", "x.y"}},
		{"exclude everything", []store.TimeRange{{Exclude: true}}, nil},
		{"include and exclude", []store.TimeRange{{From: at(15, 0)}, {From: at(30, 0), To: at(41, 0), Exclude: true}}, []string{"1", "a", "x.y"}},
		{"old versions do not match", []store.TimeRange{{To: at(5, 0)}}, nil},
	} {
		res, err := s.Search(t.Context(), store.SearchQuery{Type: "Patient", LastUpdated: tc.ranges})
		require.NoError(t, err, tc.name)
		requireVersions(t, pick(all, tc.want...), res, tc.name)
		// The expectation agrees with the contract's own definition.
		var viaContains []string
		for _, v := range pick(all, "-x", "1", "A", "B", "a", "x.y") {
			if !slices.ContainsFunc(tc.ranges, func(r store.TimeRange) bool { return !r.Contains(v.LastUpdated) }) {
				viaContains = append(viaContains, v.ID)
			}
		}
		require.Equal(t, tc.want, viaContains, "fixture for %q disagrees with TimeRange.Contains", tc.name)
	}
}

func testSearchPatient(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	for _, tc := range []struct {
		patient string
		want    []string
	}{
		{"pa", []string{"-x", "1", "a"}},
		{"pb", []string{"1", "B"}},
		{"pc", []string{"x.y"}}, // not "a", whose old version was in pc; not "gone"
		{"PA", nil},
		{"p", nil},
	} {
		res, err := s.Search(t.Context(), store.SearchQuery{Type: "Patient", Patient: tc.patient})
		require.NoError(t, err)
		requireVersions(t, pick(all, tc.want...), res, "Patient ", tc.patient)
	}
}

func testSearchPaging(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	ctx := t.Context()

	res, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Count: 2})
	require.NoError(t, err)
	requireVersions(t, pick(all, "-x", "1"), res, "Count caps")
	res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", AfterID: "A"})
	require.NoError(t, err)
	requireVersions(t, pick(all, "B", "a", "x.y"), res, "AfterID is exclusive")
	res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", AfterID: "0"})
	require.NoError(t, err)
	requireVersions(t, pick(all, "1", "A", "B", "a", "x.y"), res, "AfterID need not exist")
	res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", AfterID: "x.y"})
	require.NoError(t, err)
	require.Empty(t, res)

	for _, count := range []int{1, 2, 4, 6, 7} {
		var seen []string
		q := store.SearchQuery{Type: "Patient", Count: count}
		for range 10 {
			page, err := s.Search(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), count)
			if len(page) == 0 {
				break
			}
			seen = append(seen, ids(page)...)
			q.AfterID = page[len(page)-1].ID
		}
		require.Equal(t, []string{"-x", "1", "A", "B", "a", "x.y"}, seen, "paging with Count %d", count)
	}

	// MaxBytes ends the results with the one whose body reaches it, in
	// the order they are read: backwards from BeforeID. With a matcher too.
	one := int64(len(all["-x"].Body))
	accept := func(store.Version) bool { return true }
	for _, match := range []func(store.Version) bool{nil, accept} {
		res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", MaxBytes: 1, Match: match})
		require.NoError(t, err)
		requireVersions(t, pick(all, "-x"), res, "MaxBytes 1")
		res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", AfterID: "1", MaxBytes: one + 1, Match: match})
		require.NoError(t, err)
		requireVersions(t, pick(all, "A", "B"), res, "MaxBytes after A")
		res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", BeforeID: "x.y", Count: 4, MaxBytes: one + 1, Match: match})
		require.NoError(t, err)
		requireVersions(t, pick(all, "B", "a"), res, "MaxBytes backwards keeps the last")
		res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", Count: 2, MaxBytes: 1 << 20, Match: match})
		require.NoError(t, err)
		requireVersions(t, pick(all, "-x", "1"), res, "Count still caps")
	}
}

func testSearchCombined(t *testing.T, s store.Store) {
	all := searchFixture(t, s)
	res, err := s.Search(t.Context(), store.SearchQuery{
		Type:        "Patient",
		IDs:         []string{"-x", "1", "B", "a", "x.y"},
		Patient:     "pa",
		LastUpdated: []store.TimeRange{{From: at(15, 0)}},
		AfterID:     "-x",
		Count:       1,
	})
	require.NoError(t, err)
	requireVersions(t, pick(all, "1"), res)

	res, err = s.Search(t.Context(), store.SearchQuery{Type: "Observation", Patient: "pb"})
	require.NoError(t, err)
	require.Equal(t, []string{"Observation/0/v1"}, keys(res))
}

func testBodyBytesExact(t *testing.T, s store.Store) {
	ctx := t.Context()
	bodies := map[string]string{
		"decimals":  `{"resourceType":"Observation","id":"decimals","valueQuantity":{"value":1.50,"unit":"mg"},"component":[{"valueDecimal":0.000100},{"valueDecimal":1e3},{"valueDecimal":-0.0}]}`,
		"unicode":   `{"resourceType":"Patient","id":"unicode","name":[{"given":["Zoë","Łukasz","李"],"text":"🙂 \u00e9 \"q\" \\"}]}`,
		"extension": `{"resourceType":"Patient","id":"extension","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:30:00+01:00"}]}}`,
		"layout":    "{\n  \"resourceType\" : \"Patient\",\n\t\"id\":\"layout\" ,\"zeta\":1,\"alpha\":[ ]\n}\n",
		"large":     `{"resourceType":"Binary","id":"large","data":"` + strings.Repeat("QUJD", 50_000) + `"}`,
	}
	var versions []store.Version
	for id, b := range bodies {
		v := ver("Basic", id, 1)
		v.Body = []byte(b)
		versions = append(versions, v)
	}
	put(t, s, versions...)

	for _, want := range versions {
		got, err := s.Current(ctx, "Basic", want.ID)
		require.NoError(t, err)
		requireVersion(t, want, got, "Current ", want.ID)
		got, err = s.Version(ctx, "Basic", want.ID, 1)
		require.NoError(t, err)
		requireVersion(t, want, got, "Version ", want.ID)
		hist, err := s.History(ctx, store.HistoryQuery{Type: "Basic", ID: want.ID})
		require.NoError(t, err)
		requireVersions(t, []store.Version{want}, hist, "History ", want.ID)
	}
	res, err := s.Search(ctx, store.SearchQuery{Type: "Basic"})
	require.NoError(t, err)
	require.Len(t, res, len(bodies))
	for _, got := range res {
		require.Equal(t, bodies[got.ID], string(got.Body), "Search body %s", got.ID)
	}

	// The caller's slice is not retained: changing it after Put changes
	// nothing stored.
	v := ver("Basic", "aliasing", 1)
	v.Body = []byte(`{"resourceType":"Basic","id":"aliasing"}`)
	put(t, s, v)
	v.Body[2] = 'X'
	got, err := s.Current(ctx, "Basic", "aliasing")
	require.NoError(t, err)
	require.Equal(t, `{"resourceType":"Basic","id":"aliasing"}`, string(got.Body))
}

func testLastUpdatedMilliseconds(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	times := []time.Time{
		time.Date(2023, 12, 31, 23, 59, 59, 999_000_000, zone),
		time.Date(1999, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
		time.Now().Truncate(time.Millisecond),
	}
	for i, ts := range times {
		v := ver("Patient", fmt.Sprint("t", i), 1)
		v.LastUpdated = ts
		put(t, s, v)
		got, err := s.Current(ctx, v.Type, v.ID)
		require.NoError(t, err)
		require.Truef(t, ts.Equal(got.LastUpdated), "Current: want %s, got %s", ts, got.LastUpdated)
		got, err = s.Version(ctx, v.Type, v.ID, 1)
		require.NoError(t, err)
		require.Truef(t, ts.Equal(got.LastUpdated), "Version: want %s, got %s", ts, got.LastUpdated)

		// Exactly at the instant: in [ts, ts+1ms), not in [ts+1ms, ∞).
		res, err := s.Search(ctx, store.SearchQuery{Type: "Patient", IDs: []string{v.ID},
			LastUpdated: []store.TimeRange{{From: ts, To: ts.Add(time.Millisecond)}}})
		require.NoError(t, err)
		require.Len(t, res, 1, "the stored instant lies in its own millisecond")
		res, err = s.Search(ctx, store.SearchQuery{Type: "Patient", IDs: []string{v.ID},
			LastUpdated: []store.TimeRange{{From: ts.Add(time.Millisecond)}}})
		require.NoError(t, err)
		require.Empty(t, res)
	}
}
