package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// dueSubscriptions stores n active Subscriptions s0…s(n-1), each with one
// event, and claims them all.
func dueSubscriptions(t *testing.T, s *postgres.Store, n int, now time.Time) []store.DeliveryTask {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		for i := range n {
			id := fmt.Sprint("s", i)
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: id, Owner: "c", Status: "active",
				Topic: "http://example.org/fhir/SubscriptionTopic/t", Endpoint: "https://hooks.example.org/h",
				Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			if _, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: id, Timestamp: now,
				Topic: "http://example.org/fhir/SubscriptionTopic/t", FocusType: "Encounter", FocusID: "e" + id,
				FocusVersion: 1, Method: store.MethodCreate}); err != nil {
				return err
			}
		}
		return nil
	}))
	tasks, err := s.ClaimDue(ctx, now, n, time.Minute, 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, n)
	return tasks
}

// sent is the outcome of a delivered notification of task's events.
func sent(tk store.DeliveryTask, now time.Time) store.DeliveryResult {
	return store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: now, Sent: true,
		DeliveredThrough: tk.LastEventNumber,
		Attempt: &store.Attempt{At: now, Instance: "i", Channel: "rest-hook", Kind: "event-notification",
			FirstEvent: 1, LastEvent: tk.LastEventNumber, Outcome: "delivered", StatusCode: 200, Latency: time.Millisecond}}
}

// TestFinishesShareAStatement: outcomes recorded while a statement is in
// flight go together in the next one, each with its own result: applied,
// or ErrLeaseLost for a lease no longer held, which logs no attempt.
func TestFinishesShareAStatement(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	require.NoError(t, s.SeparateDeliveryPool(ctx, 1))
	now := time.Now().Truncate(time.Millisecond)
	const n = 40
	tasks := dueSubscriptions(t, s, n, now)

	release, queued, statements := s.HoldFinishesForTest()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, tk := range tasks {
		r := sent(tk, now)
		if i%8 == 0 {
			r.Lease = "not-the-lease"
		}
		wg.Go(func() { errs[i] = s.FinishDelivery(ctx, r) })
	}
	require.Eventually(t, func() bool { return queued() == n-1 }, 10*time.Second, time.Millisecond,
		"every outcome but the one the finisher holds waits for it")
	release()
	wg.Wait()
	require.Equal(t, 1, statements(), "one statement for every outcome")
	generic, custom, err := s.DeliveryPreparedPlansForTest(ctx, "WITH input AS")
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 0}, [2]int64{generic, custom}, "planned once, not for its values")

	for i, tk := range tasks {
		attempts, err := s.Attempts(ctx, store.AttemptQuery{SubscriptionID: tk.State.ID})
		require.NoError(t, err)
		if i%8 == 0 {
			require.ErrorIs(t, errs[i], store.ErrLeaseLost, tk.State.ID)
			require.Empty(t, attempts, tk.State.ID)
			continue
		}
		require.NoError(t, errs[i], tk.State.ID)
		require.Len(t, attempts, 1, tk.State.ID)
		require.Equal(t, "delivered", attempts[0].Outcome)
	}
	// The applied outcomes released their leases with nothing left to send;
	// the others still hold theirs: nothing is due.
	again, err := s.ClaimDue(ctx, now.Add(time.Second), n, time.Minute, 10, 0)
	require.NoError(t, err)
	require.Empty(t, again)
}

// TestFinishLockedByAWriteGoesAlone: an outcome whose Subscription a write
// transaction holds (its append locks the row until it commits) does not
// hold up the outcomes recorded with it; it is recorded alone once the
// write commits, and then sees the event that write appended.
func TestFinishLockedByAWriteGoesAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	require.NoError(t, s.SeparateDeliveryPool(ctx, 2))
	now := time.Now().Truncate(time.Millisecond)
	tasks := dueSubscriptions(t, s, 2, now)

	appended, commit, written := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		written <- s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: "s0", Timestamp: now,
				Topic: "http://example.org/fhir/SubscriptionTopic/t", FocusType: "Encounter", FocusID: "e-next",
				FocusVersion: 1, Method: store.MethodCreate})
			close(appended)
			if err != nil {
				return err
			}
			<-commit
			return nil
		})
	}()
	<-appended

	locked := make(chan error, 1)
	go func() { locked <- s.FinishDelivery(ctx, sent(tasks[0], now)) }()
	other := make(chan error, 1)
	go func() { other <- s.FinishDelivery(ctx, sent(tasks[1], now)) }()
	select {
	case err := <-other:
		require.NoError(t, err, "the unlocked Subscription's outcome")
	case <-time.After(20 * time.Second):
		t.Fatal("an outcome waited for another Subscription's row lock")
	}

	close(commit)
	require.NoError(t, <-written)
	require.NoError(t, <-locked)
	// Recorded after the write: the event it appended makes s0 due again.
	due, err := s.ClaimDue(ctx, now.Add(time.Second), 2, time.Minute, 10, 0)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, "s0", due[0].State.ID)
	require.EqualValues(t, 2, due[0].LastEventNumber)
	require.EqualValues(t, 1, due[0].DeliveredThrough)
}
