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

// TestAttackWakeCoalescingAcrossInstances (holds, expected): instance A
// only writes (no engine, no listener); instance B only delivers, woken by
// notifications alone (it never polls). Concurrent writes on A share the
// notifier's NOTIFYs; whichever write commits last, a NOTIFY sent after its
// commit wakes B, so B delivers every event, in order, each once.
func TestAttackWakeCoalescingAcrossInstances(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	a := pgtest.Open(t, url, postgres.WithMaxConns(8))
	b := pgtest.Open(t, url, postgres.WithMaxConns(4))
	fa := &handoffFixture{t: t, st: a}
	const subs, writers, writes = 8, 8, 25
	for i := range subs {
		fa.put(fmt.Sprint("s", i), fmt.Sprint("c", i), "active")
	}
	_, db := listenForWakes(t, url)
	wakeB := b.DeliveryWake()
	settleListener(t, b, db)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	delivered := map[string][]int64{}
	var claimErr error
	bDone := make(chan struct{})
	go func() { // B: claim until nothing is due, on every wake-up
		defer close(bDone)
		for {
			select {
			case <-wakeB:
			case <-ctx.Done():
				return
			}
			for {
				tasks, err := b.ClaimDue(ctx, time.Now(), 10, time.Minute, 100, 100)
				if err != nil {
					if ctx.Err() == nil {
						claimErr = err
					}
					return
				}
				if len(tasks) == 0 {
					break
				}
				for _, tk := range tasks {
					mu.Lock()
					delivered[tk.State.ID] = append(delivered[tk.State.ID], eventNumbers(tk)...)
					mu.Unlock()
					through := tk.DeliveredThrough
					if n := len(tk.Events); n > 0 {
						through = tk.Events[n-1].Number
					}
					if err := b.FinishDelivery(ctx, store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: time.Now(),
						Sent: len(tk.Events) > 0, DeliveredThrough: through}); err != nil {
						if ctx.Err() == nil {
							claimErr = err
						}
						return
					}
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				id := fmt.Sprint("s", (w+i)%subs)
				require.NoError(t, a.InTx(t.Context(), func(tx store.Tx) error {
					return tx.AppendEventsAtCommit(t.Context(), []store.Event{{SubscriptionID: id, Timestamp: time.Now(),
						Topic: "https://example.org/topic", FocusType: "Encounter", FocusID: fmt.Sprint("e", w, "-", i), FocusVersion: 1,
						Method: store.MethodUpdate}})
				}))
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		var behind int
		require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM subscriptions WHERE delivered_through < last_event_number`).Scan(&behind))
		return behind == 0
	}, 10*time.Second, 10*time.Millisecond, "B, woken only by A's notifier, left events undelivered")
	cancel()
	<-bDone
	require.NoError(t, claimErr)
	total := 0
	for id, nums := range delivered {
		for i, n := range nums {
			require.Equal(t, int64(i+1), n, "%s: events out of order or repeated: %v", id, nums)
		}
		total += len(nums)
	}
	require.Equal(t, writers*writes, total)
}

// TestAttackWakeCloseRacesWrites (holds, expected): writes racing with
// Close neither hang nor leave the notifier's session (or goroutine)
// behind, whichever wins: a request after stop is dropped, one before it
// starts a notifier that stop then ends.
func TestAttackWakeCloseRacesWrites(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	_, db := listenForWakes(t, url)
	setup := pgtest.Open(t, url, postgres.WithMaxConns(2))
	(&handoffFixture{t: t, st: setup}).put("a", "client", "active")
	setup.Close()
	var ok atomic.Int64
	for round := range 10 {
		st := pgtest.Open(t, url, postgres.WithMaxConns(4))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 4 {
			wg.Go(func() {
				<-start
				for i := 0; ; i++ {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					err := st.InTx(ctx, func(tx store.Tx) error {
						return tx.AppendEventsAtCommit(ctx, []store.Event{{SubscriptionID: "a", Timestamp: time.Now(),
							Topic: "https://example.org/topic", FocusType: "Encounter", FocusID: fmt.Sprint("e", round, w, i), FocusVersion: 1,
							Method: store.MethodUpdate}})
					})
					timedOut := ctx.Err() != nil
					cancel()
					if timedOut {
						t.Errorf("a write racing with Close hung")
						return
					}
					if err != nil {
						return // closed
					}
					ok.Add(1)
				}
			})
		}
		base := ok.Load()
		close(start)
		require.Eventually(t, func() bool { return ok.Load() >= base+8 }, 10*time.Second, time.Millisecond,
			"the writes did not get going") // the notifier runs; Close races the next writes
		closed := make(chan struct{})
		go func() { st.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("Close hung while writes ran")
		}
		wg.Wait()
		st.FlushWakesForTest() // must not hang after Close
	}
	t.Logf("%d writes committed while Close raced them", ok.Load())
	require.Eventually(t, func() bool { return wakeSessions(t, db) == 0 }, 10*time.Second, 10*time.Millisecond,
		"a notifier session outlived its Store's Close")
}

// TestAttackWakeNotifierNameStaysItsOwn (holds, expected): the notifier
// builds its session's parameters from a copy of the pool's configuration;
// connections the pools open after it still carry the Store's own
// application_name (so "… wake" names the notifier alone).
func TestAttackWakeNotifierNameStaysItsOwn(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	_, db := listenForWakes(t, url)
	st := pgtest.Open(t, url, postgres.WithMaxConns(8))
	f := &handoffFixture{t: t, st: st}
	for i := range 8 {
		f.put(fmt.Sprint("s", i), "client", "active")
	}
	f.write("s0") // the notifier connects
	st.FlushWakesForTest()
	var wg sync.WaitGroup
	for i := range 8 { // the pool opens connections after it
		wg.Go(func() {
			for range 5 {
				f.write(fmt.Sprint("s", i))
			}
		})
	}
	wg.Wait()
	_ = st.DeliveryWake() // and the listener, from the pool
	settleListener(t, st, db)
	st.FlushWakesForTest()
	rows, err := db.Query(t.Context(), `SELECT application_name, count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' GROUP BY 1 ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var app string
		var n int
		err := r.Scan(&app, &n)
		return fmt.Sprintf("%s=%d", app, n), err
	})
	require.NoError(t, err)
	t.Logf("sessions: %v", names)
	require.Equal(t, 1, wakeSessions(t, db), "sessions: %v", names)
}
