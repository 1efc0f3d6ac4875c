package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestAttackHotMigrationRoundTripWithDueRowsAndLeases: on a database with
// due rows, leased ones among them, migration 00022's Down brings back
// subscriptions_owner_due (valid) and drops the queue; Up again fills the
// queue with exactly the due rows, and the claim then takes every unleased
// one and none of the leased.
func TestAttackHotMigrationRoundTripWithDueRowsAndLeases(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		f.put(id, fmt.Sprintf("client-%d", i%3), "active")
		ids = append(ids, id)
	}
	f.write(ids...)
	leased, err := st.ClaimDue(t.Context(), time.Now(), 4, time.Hour, 100, 0)
	require.NoError(t, err)
	require.Len(t, leased, 4)

	db, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer db.Close(context.Background())
	before := readDue(t, db, dueTruthSQL)
	require.Len(t, before, 12)

	require.NoError(t, postgres.MigrateDownToForTest(t.Context(), url, 21))
	var valid bool
	require.NoError(t, db.QueryRow(t.Context(), `SELECT indisvalid FROM pg_index WHERE indexrelid = 'subscriptions_owner_due'::regclass`).Scan(&valid))
	require.True(t, valid)
	var gone bool
	require.NoError(t, db.QueryRow(t.Context(), `SELECT to_regclass('subscription_due') IS NULL AND to_regproc('herald_due_changed') IS NULL`).Scan(&gone))
	require.True(t, gone, "Down drops the table and the function")
	require.Equal(t, before, readDue(t, db, dueTruthSQL), "Down leaves due_at alone")

	require.NoError(t, postgres.Migrate(t.Context(), url))
	require.Equal(t, before, readDue(t, db, dueQueueSQL), "Up fills the queue with the due rows")

	tasks, err := st.ClaimDue(t.Context(), time.Now(), 20, time.Minute, 100, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 8, "the unleased due rows, and no leased one")
	held := map[string]bool{}
	for _, tk := range leased {
		held[tk.State.ID] = true
	}
	for _, tk := range tasks {
		require.False(t, held[tk.State.ID], tk.State.ID)
	}
}

// TestAttackHotQueueMirrorsUnderConcurrency: writers appending to shared
// Subscriptions (in random id sets), claimers under a per-owner cap, and
// finishers (sent, failed with a retry time, or released) run at once. At
// no claim does an owner hold more than the cap, no Subscription is leased
// to two claims at once, and at the end subscription_due equals the rows
// with due_at, and every event is delivered once claims keep running (no
// due Subscription is stuck).
func TestAttackHotQueueMirrorsUnderConcurrency(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(8))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	const subs, owners, perOwner = 16, 4, 2
	var ids []string
	for i := range subs {
		id := fmt.Sprintf("s%02d", i)
		f.put(id, fmt.Sprintf("client-%d", i%owners), "active")
		ids = append(ids, id)
	}
	ctx := t.Context()
	var mu sync.Mutex
	holder := map[string]string{} // id -> lease
	var violations []string
	var stop atomic.Bool
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				var evs []store.Event
				for j := range subs {
					if (i+j+w)%3 == 0 {
						evs = append(evs, store.Event{SubscriptionID: ids[j], Timestamp: time.Now(), Topic: "https://example.org/topic",
							FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate})
					}
				}
				if err := st.InTx(ctx, func(tx store.Tx) error { return tx.AppendEventsAtCommit(ctx, evs) }); err != nil {
					mu.Lock()
					violations = append(violations, "append: "+err.Error())
					mu.Unlock()
					return
				}
			}
		}()
	}
	claimer := func(c int) {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			tasks, err := st.ClaimDue(ctx, time.Now(), 4, time.Minute, 100, perOwner)
			if err != nil {
				mu.Lock()
				violations = append(violations, "claim: "+err.Error())
				mu.Unlock()
				return
			}
			claimed.Add(int64(len(tasks)))
			mu.Lock()
			perOwnerHeld := map[string]int{}
			for id := range holder {
				perOwnerHeld[fmt.Sprintf("client-%d", idx(id)%owners)]++
			}
			for _, tk := range tasks {
				if l, ok := holder[tk.State.ID]; ok {
					violations = append(violations, fmt.Sprintf("%s leased twice (%s, %s)", tk.State.ID, l, tk.Lease))
				}
				holder[tk.State.ID] = tk.Lease
				perOwnerHeld[tk.State.Owner]++
				if perOwnerHeld[tk.State.Owner] > perOwner {
					violations = append(violations, fmt.Sprintf("%s holds %d", tk.State.Owner, perOwnerHeld[tk.State.Owner]))
				}
			}
			mu.Unlock()
			for k, tk := range tasks {
				r := store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: time.Now()}
				switch (i + k + c) % 4 {
				case 0, 1:
					r.Sent, r.DeliveredThrough = true, tk.LastEventNumber
				case 2:
					r.Failed, r.Next = true, time.Now().Add(-time.Millisecond)
				}
				mu.Lock()
				delete(holder, tk.State.ID) // before the outcome commits: a later claim may lease it
				mu.Unlock()
				if (i+k+c)%4 == 3 {
					err = st.ReleaseLease(ctx, tk.State.ID, tk.Lease)
				} else {
					err = st.FinishDelivery(ctx, r)
				}
				if err != nil {
					mu.Lock()
					violations = append(violations, "finish: "+err.Error())
					mu.Unlock()
					return
				}
			}
		}
	}
	for c := range 3 {
		wg.Add(1)
		go claimer(c)
	}
	deadline := time.Now().Add(4 * time.Second)
	require.Eventually(t, func() bool { return time.Now().After(deadline) }, 10*time.Second, 50*time.Millisecond)
	stop.Store(true)
	wg.Wait()
	require.Empty(t, violations)
	t.Logf("%d tasks claimed", claimed.Load())
	require.Positive(t, claimed.Load())

	db, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer db.Close(context.Background())
	require.Equal(t, readDue(t, db, dueTruthSQL), readDue(t, db, dueQueueSQL), "the queue mirrors due_at")

	// Drain: every Subscription owing events is claimable until none owes.
	require.Eventually(t, func() bool {
		tasks, err := st.ClaimDue(ctx, time.Now(), 8, time.Minute, 1000, perOwner)
		require.NoError(t, err)
		for _, tk := range tasks {
			require.NoError(t, st.FinishDelivery(ctx, store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: time.Now(),
				Sent: true, DeliveredThrough: tk.LastEventNumber}))
		}
		var owing int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE delivered_through < last_event_number`).Scan(&owing))
		return owing == 0
	}, 20*time.Second, 10*time.Millisecond, "a Subscription owing events is never claimed")
	require.Equal(t, readDue(t, db, dueTruthSQL), readDue(t, db, dueQueueSQL), "the queue mirrors due_at after the drain")
}

func idx(id string) int {
	var n int
	fmt.Sscanf(id, "s%02d", &n)
	return n
}
