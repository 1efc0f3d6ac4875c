package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// The delivery attempt log (store.AttemptLog) and the admin actions on the
// queue. Run lists these tests beside the others.

// later is well after every fixture time: everything owed is due.
var later = at(10_000, 0)

// attempt is a failed handshake attempt at at(n, 0), with every field set.
func attempt(n int, class string) store.Attempt {
	return store.Attempt{Seq: -5, SubscriptionID: "ignored", At: at(n, 0).Add(123456 * time.Nanosecond), Instance: "host-1",
		Channel: "rest-hook", Kind: "event-notification", FirstEvent: 3, LastEvent: 4, Outcome: store.AttemptFailure,
		Class: class, StatusCode: 503, Latency: 1500*time.Microsecond + 999, ResponseBytes: 70_000, ResponseBody: "busy é"}
}

// logAttempts claims id and finishes it with each attempt in turn (a
// failure each), through the Store or a Tx alternately.
func logAttempts(t *testing.T, s store.Store, id string, as ...store.Attempt) {
	t.Helper()
	for i, a := range as {
		_, tasks := claim(t, s, later, 100)
		var lease string
		for _, tk := range tasks {
			if tk.State.ID == id {
				lease = tk.Lease
			} else {
				require.NoError(t, s.ReleaseLease(t.Context(), tk.State.ID, tk.Lease))
			}
		}
		require.NotEmpty(t, lease, "%s is claimable", id)
		r := store.DeliveryResult{SubscriptionID: id, Lease: lease, Now: a.At, Failed: true, Next: a.At.Add(time.Hour), Attempt: &a}
		if i%2 == 0 {
			require.NoError(t, s.FinishDelivery(t.Context(), r))
		} else {
			require.NoError(t, finish(s, t, r))
		}
	}
}

func attempts(t *testing.T, s store.Store, q store.AttemptQuery) []store.Attempt {
	t.Helper()
	as, err := s.Attempts(t.Context(), q)
	require.NoError(t, err)
	return as
}

func seqs(as []store.Attempt) []int64 {
	var out []int64
	for _, a := range as {
		out = append(out, a.Seq)
	}
	return out
}

func testAttemptLog(t *testing.T, s store.Store) {
	putSubs(t, s, requested("s1"), requested("s2"))
	require.Empty(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1"}))

	logAttempts(t, s, "s1", attempt(1, "timeout"), attempt(2, "http-status"), attempt(3, "timeout"))
	logAttempts(t, s, "s2", attempt(4, "dns"))
	got := attempts(t, s, store.AttemptQuery{SubscriptionID: "s1"})
	require.Len(t, got, 3)
	want := attempt(3, "timeout")
	a := got[0]
	require.Equal(t, "s1", a.SubscriptionID, "the result's Subscription")
	require.Positive(t, a.Seq, "assigned by the store")
	require.True(t, a.At.Equal(want.At.Truncate(time.Microsecond)), "at to the microsecond: %v", a.At)
	require.Equal(t, want.Latency.Truncate(time.Microsecond), a.Latency)
	a.Seq, a.SubscriptionID, a.At, a.Latency = want.Seq, want.SubscriptionID, want.At, want.Latency
	require.Equal(t, want, a, "every other field as given")
	require.Greater(t, got[0].Seq, got[1].Seq, "newest first")
	require.Greater(t, got[1].Seq, got[2].Seq)
	require.Equal(t, "http-status", got[1].Class)

	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", Class: "timeout"}), 2)
	require.Empty(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", Outcome: store.AttemptSuccess}))
	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", Outcome: store.AttemptFailure}), 3)
	page := attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", Limit: 2})
	require.Equal(t, seqs(got[:2]), seqs(page))
	require.Equal(t, seqs(got[2:]), seqs(attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", BeforeSeq: page[1].Seq})))
	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s2"}), 1, "each Subscription its own")

	// A lost lease logs nothing, and neither does a rolled-back transaction.
	_, tasks := claim(t, s, later, 10)
	require.NotEmpty(t, tasks)
	for _, tk := range tasks {
		require.NoError(t, s.ReleaseLease(t.Context(), tk.State.ID, tk.Lease))
	}
	lost := attempt(5, "tls")
	err := s.FinishDelivery(t.Context(), store.DeliveryResult{SubscriptionID: "s1", Lease: tasks[0].Lease, Now: at(5, 0), Failed: true, Attempt: &lost})
	require.ErrorIs(t, err, store.ErrLeaseLost)
	_, tasks = claim(t, s, later, 10)
	boom := errors.New("boom")
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		for _, tk := range tasks {
			if err := tx.FinishDelivery(t.Context(), store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: at(5, 0), Attempt: &lost}); err != nil {
				return err
			}
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Empty(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1", Class: "tls"}))
}

func testAttemptPrune(t *testing.T, s store.Store) {
	putSubs(t, s, requested("s1"), requested("s2"))
	logAttempts(t, s, "s1", attempt(1, "a"), attempt(2, "b"), attempt(3, "c"), attempt(4, "d"), attempt(5, "e"))
	logAttempts(t, s, "s2", attempt(1, "a"), attempt(6, "f"))

	n, err := s.PruneAttempts(t.Context(), at(2, 0), 0)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "by age: those before minute 2 (s1's 1, s2's 1); s1's at 2:00.000123 stays")
	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s1"}), 4)
	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s2"}), 1)

	n, err = s.PruneAttempts(t.Context(), at(0, 0), 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "by count: s1 keeps its newest 2")
	var classes []string
	for _, a := range attempts(t, s, store.AttemptQuery{SubscriptionID: "s1"}) {
		classes = append(classes, a.Class)
	}
	require.Equal(t, []string{"e", "d"}, classes)
	require.Len(t, attempts(t, s, store.AttemptQuery{SubscriptionID: "s2"}), 1, "under the bound")

	n, err = s.PruneAttempts(t.Context(), at(0, 0), 2)
	require.NoError(t, err)
	require.Zero(t, n, "nothing more to prune")
}

func testDeliveryOverviews(t *testing.T, s store.Store) {
	a, b, c := requested("a"), requested("b"), requested("c")
	b.Owner, c.Status = "client-b", "off"
	putSubs(t, s, a, b, c)
	appendSeries(t, s, "a", 3)
	logAttempts(t, s, "b", attempt(1, "dns"))

	all, err := s.DeliveryOverviews(t.Context(), store.SubscriptionFilter{}, "", 0)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, []string{"a", "b", "c"}, []string{all[0].State.ID, all[1].State.ID, all[2].State.ID})
	oa := all[0]
	require.Equal(t, int64(3), oa.LastEventNumber)
	require.Zero(t, oa.DeliveredThrough)
	require.True(t, oa.OldestUndelivered.Equal(event("a", "e1", 1).Timestamp), "event 1's time: %v", oa.OldestUndelivered)
	require.Nil(t, oa.LastFailure)
	require.False(t, oa.DueAt.IsZero(), "the handshake is due")
	ob := all[1]
	require.Equal(t, 1, ob.FailureCount)
	require.NotNil(t, ob.LastFailure)
	require.Equal(t, "dns", ob.LastFailure.Class)
	require.Equal(t, "b", ob.LastFailure.SubscriptionID)
	require.True(t, ob.OldestUndelivered.IsZero(), "nothing waits")

	page, err := s.DeliveryOverviews(t.Context(), store.SubscriptionFilter{}, "a", 1)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "b", page[0].State.ID)
	byOwner, err := s.DeliveryOverviews(t.Context(), store.SubscriptionFilter{Owner: "client-b"}, "", 0)
	require.NoError(t, err)
	require.Len(t, byOwner, 1)
	off, err := s.DeliveryOverviews(t.Context(), store.SubscriptionFilter{Status: []string{"off"}}, "", 0)
	require.NoError(t, err)
	require.Len(t, off, 1)
	require.Equal(t, "c", off[0].State.ID)
}

func testRetryNow(t *testing.T, s store.Store) {
	ctx := store.WithActor(t.Context(), "ops")
	require.ErrorIs(t, s.RetryNow(ctx, "nope", at(9, 0)), store.ErrNotFound)
	off := requested("off")
	off.Status = "off"
	putSubs(t, s, requested("s1"), off)
	require.ErrorIs(t, s.RetryNow(ctx, "off", at(9, 0)), store.ErrConflict)
	logAttempts(t, s, "s1", attempt(1, "timeout"), attempt(2, "timeout"))
	// The failures left it due an hour later (Next); the retry makes it due now.
	_, tasks := claim(t, s, at(8, 0), 10)
	require.Empty(t, tasks)
	require.NoError(t, s.RetryNow(ctx, "s1", at(3, 0)))
	ids, tasks := claim(t, s, at(3, 0), 10)
	require.Equal(t, []string{"s1"}, ids, "due at the retry's now")
	require.Zero(t, tasks[0].FailureCount, "the backoff starts again")
	require.True(t, tasks[0].HandshakePending, "what was owed is still owed")
	log, err := s.AuditLog(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, log, 1, "the refused retries left no entry")
	require.Equal(t, store.AuditRetry, log[0].Action)
	require.Equal(t, "Subscription/s1", log[0].Target)
	require.Equal(t, "ops", log[0].Actor)
	var before struct {
		FailureCount int       `json:"failure_count"`
		DueAt        time.Time `json:"due_at"`
	}
	require.NoError(t, strictjson.Unmarshal(log[0].Before, &before))
	require.Equal(t, 2, before.FailureCount)
	require.WithinDuration(t, at(62, 0), before.DueAt, time.Millisecond, "the schedule before the retry")
}

func testAppendAudit(t *testing.T, s store.Store) {
	ctx := store.WithActor(t.Context(), "ops")
	entry := store.AuditEntry{Action: store.AuditReactivate, Target: "Subscription/s1", Before: []byte(`{"status":"off"}`), After: []byte(`{"status":"requested"}`)}
	boom := errors.New("boom")
	require.ErrorIs(t, s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.AppendAudit(ctx, entry))
		return boom
	}), boom)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, entry) }))
	log, err := s.AuditLog(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, log, 1, "the rolled-back entry is not kept")
	require.Equal(t, "ops", log[0].Actor)
	require.Equal(t, entry.Action, log[0].Action)
	require.Equal(t, entry.Target, log[0].Target)
	require.JSONEq(t, string(entry.After), string(log[0].After))
	require.False(t, log[0].At.IsZero())
}
