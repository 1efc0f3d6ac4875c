package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// fakeEngine is a store.HandoffReceiver with free workers, which records
// what it is handed instead of sending it.
type fakeEngine struct {
	mu       sync.Mutex
	free     int
	perOwner int
	leaseFor time.Duration
	reserved int // Reserve calls that held a worker
	handed   [][]store.DeliveryTask
}

func (f *fakeEngine) Reserve(n int) store.Reservation {
	f.mu.Lock()
	defer f.mu.Unlock()
	held := min(n, f.free)
	if held == 0 {
		return store.Reservation{}
	}
	f.free -= held
	f.reserved++
	return store.Reservation{Slots: held, Now: time.Now(), LeaseFor: f.leaseFor, EventsPerTask: 100, PerOwner: f.perOwner,
		Start: func(tasks []store.DeliveryTask) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.free += held // the test finishes or drops the tasks itself
			if tasks != nil {
				f.handed = append(f.handed, tasks)
			}
		}}
}

// take returns the tasks handed since the last call.
func (f *fakeEngine) take() []store.DeliveryTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.DeliveryTask
	for _, ts := range f.handed {
		out = append(out, ts...)
	}
	f.handed = nil
	return out
}

func (f *fakeEngine) freeWorkers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.free
}

type handoffFixture struct {
	t   *testing.T
	st  *postgres.Store
	eng *fakeEngine
}

func newHandoffFixture(t *testing.T) *handoffFixture {
	t.Helper()
	t.Parallel()
	return &handoffFixture{t: t, st: pgtest.New(t), eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
}

// handOff makes the fake engine the receiver until the returned stop.
func (f *handoffFixture) handOff() (stop func()) { return f.st.HandOffTo(f.eng) }

// put stores an active (handshake done) rest-hook Subscription, or one
// with the given status.
func (f *handoffFixture) put(id, owner, status string) {
	f.t.Helper()
	now := time.Now().Add(-time.Minute)
	require.NoError(f.t, f.st.InTx(f.t.Context(), func(tx store.Tx) error {
		return tx.PutSubscription(f.t.Context(), store.SubscriptionState{ID: id, Owner: owner, Context: "system",
			Status: status, Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
			Content: "id-only", CreatedAt: now, UpdatedAt: now})
	}))
}

// write appends one event to each Subscription in one transaction, at
// commit, as a FHIR write does.
func (f *handoffFixture) write(ids ...string) {
	f.t.Helper()
	var evs []store.Event
	for _, id := range ids {
		evs = append(evs, store.Event{SubscriptionID: id, Timestamp: time.Now().Add(-time.Second), Topic: "https://example.org/topic",
			FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate})
	}
	require.NoError(f.t, f.st.InTx(f.t.Context(), func(tx store.Tx) error { return tx.AppendEventsAtCommit(f.t.Context(), evs) }))
}

func (f *handoffFixture) claim(perOwner int) []store.DeliveryTask {
	f.t.Helper()
	tasks, err := f.st.ClaimDue(f.t.Context(), time.Now(), 10, time.Minute, 100, perOwner)
	require.NoError(f.t, err)
	return tasks
}

func (f *handoffFixture) finish(r store.DeliveryResult) {
	f.t.Helper()
	r.Now = time.Now()
	require.NoError(f.t, f.st.FinishDelivery(f.t.Context(), r))
}

func eventNumbers(tk store.DeliveryTask) []int64 {
	var out []int64
	for _, e := range tk.Events {
		out = append(out, e.Number)
	}
	return out
}

// TestHandoffLeasesAnIdleSubscription: a write to an idle Subscription
// leases it in its own transaction and hands the task (as a claim returns
// it) to the engine after COMMIT; no claim runs. The claim lock is held by
// the write's session when the hand-off statement has run (pg_locks), and
// released with COMMIT. The lease is a real one: claims pass the
// Subscription over, and the engine's outcome ends it; the next write hands
// it off again.
func TestHandoffLeasesAnIdleSubscription(t *testing.T) {
	f := newHandoffFixture(t)
	f.put("a", "client", "active")
	defer f.handOff()()
	var held []int64
	f.st.ProbeHandoffForTest(postgres.ClaimLockHeldSQL("= pg_backend_pid()"), func(n int64) { held = append(held, n) })

	f.write("a")
	tasks := f.eng.take()
	require.Len(t, tasks, 1, "the write to an idle Subscription was not handed off")
	tk := tasks[0]
	require.Equal(t, "a", tk.State.ID)
	require.NotEmpty(t, tk.Lease)
	require.Equal(t, []int64{1}, eventNumbers(tk))
	require.Equal(t, int64(1), tk.LastEventNumber)
	require.Equal(t, int64(0), tk.DeliveredThrough)
	require.False(t, tk.HandshakePending)
	require.WithinDuration(t, time.Now().Add(time.Minute), tk.LeaseUntil, 10*time.Second)
	require.Equal(t, "client", tk.State.Owner)
	require.Equal(t, []int64{1}, held, "the write's session did not hold the claim lock at the hand-off")
	require.Zero(t, f.st.ClaimsForTest(), "a claim ran")
	require.Equal(t, 4, f.eng.freeWorkers())

	var holders int64
	require.NoError(t, f.st.InTx(t.Context(), func(tx store.Tx) error {
		return nil
	}))
	rows, err := f.st.LeaseRowsForTest(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, rows, "the lease is not in subscription_leases (the claim trigger's bookkeeping)")
	holders = f.lockHolders("IS NOT NULL")
	require.Zero(t, holders, "the claim lock outlived the write's COMMIT")

	require.Empty(t, f.claim(3), "a claim took a handed-off Subscription")
	f.finish(store.DeliveryResult{SubscriptionID: "a", Lease: tk.Lease, Sent: true, DeliveredThrough: 1})

	f.write("a")
	tasks = f.eng.take()
	require.Len(t, tasks, 1, "the second write to the idle Subscription was not handed off")
	require.Equal(t, []int64{2}, eventNumbers(tasks[0]))
	require.NotEqual(t, tk.Lease, tasks[0].Lease)
}

// lockHolders counts the sessions that hold the claim lock and whose pid
// satisfies cond.
func (f *handoffFixture) lockHolders(cond string) int64 {
	f.t.Helper()
	var n int64
	require.NoError(f.t, f.st.InTx(f.t.Context(), func(tx store.Tx) error {
		v, err := tx.(interface {
			QueryForTest(ctx context.Context, sql string) (string, error)
		}).QueryForTest(f.t.Context(), `SELECT (`+postgres.ClaimLockHeldSQL(cond)+`)::text`)
		if err == nil {
			_, err = fmt.Sscan(v, &n)
		}
		return err
	}))
	return n
}

// TestHandoffNotTaken: the cases in which a write leaves its event to the
// claim. Each time no task is handed, the reserved workers are freed, no
// lease is taken, and a claim delivers the event.
func TestHandoffNotTaken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// setup prepares Subscription a (and others) without hand-offs
		// and returns the number of a's event the claim must bring first.
		setup func(f *handoffFixture) int64
		// during runs with the hand-off on, around the write.
		during func(f *handoffFixture, write func())
	}{
		{"backlog", func(f *handoffFixture) int64 {
			f.put("a", "client", "active")
			f.write("a") // not delivered yet
			return 1
		}, nil},
		{"leased by another worker", func(f *handoffFixture) int64 {
			f.put("a", "client", "active")
			f.write("a")
			tasks := f.claim(3)
			require.Len(f.t, tasks, 1)
			// Delivered, and the worker keeps the lease (goes on with it).
			f.finish(store.DeliveryResult{SubscriptionID: "a", Lease: tasks[0].Lease, Sent: true, DeliveredThrough: 1, KeepFor: time.Minute})
			return 0 // leased: no claim either
		}, nil},
		{"backing off", func(f *handoffFixture) int64 {
			f.put("a", "client", "active")
			f.write("a")
			tasks := f.claim(3)
			require.Len(f.t, tasks, 1)
			f.finish(store.DeliveryResult{SubscriptionID: "a", Lease: tasks[0].Lease, Failed: true, DeliveredThrough: 1, Next: time.Now().Add(time.Hour)})
			return 0 // not due before its retry
		}, nil},
		{"failed, its retry due", func(f *handoffFixture) int64 {
			f.put("a", "client", "active")
			f.write("a")
			tasks := f.claim(3)
			require.Len(f.t, tasks, 1)
			f.finish(store.DeliveryResult{SubscriptionID: "a", Lease: tasks[0].Lease, Failed: true, DeliveredThrough: 1, Next: time.Now().Add(-time.Second)})
			return 2 // its failure is not forgotten before a success
		}, nil},
		{"handshake pending", func(f *handoffFixture) int64 {
			f.put("a", "client", "requested")
			f.put("a", "client", "active") // a client's update keeps the handshake owed
			return -1                      // the claim brings the handshake, no events
		}, nil},
		{"owner at its cap", func(f *handoffFixture) int64 {
			f.eng.perOwner = 1
			f.put("a", "client", "active")
			f.put("b", "client", "active")
			f.write("b")
			require.Len(f.t, f.claim(1), 1) // b leased: the owner holds its one lease
			return 0                        // the claim is capped too
		}, nil},
		{"no free worker", func(f *handoffFixture) int64 {
			f.eng.free = 0
			f.put("a", "client", "active")
			return 1
		}, nil},
		{"claim lock held by another session", func(f *handoffFixture) int64 {
			f.put("a", "client", "active")
			return 1
		}, func(f *handoffFixture, write func()) {
			release, pid, err := f.st.HoldClaimLockForTest(f.t.Context())
			require.NoError(f.t, err)
			defer release()
			require.Equal(f.t, int64(1), f.lockHolders(fmt.Sprintf("= %d", pid)), "the other session does not hold the claim lock")
			var held []int64
			f.st.ProbeHandoffForTest(postgres.ClaimLockHeldSQL("= pg_backend_pid()"), func(n int64) { held = append(held, n) })
			write()
			require.Equal(f.t, []int64{0}, held, "the write holds the claim lock another session holds")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newHandoffFixture(t)
			first := c.setup(f)
			leases, err := f.st.LeaseRowsForTest(t.Context())
			require.NoError(t, err)
			stop := f.handOff()
			free := f.eng.freeWorkers()
			write := func() { f.write("a") }
			if c.during != nil {
				c.during(f, write)
			} else {
				write()
			}
			stop()
			require.Empty(t, f.eng.take(), "handed off")
			require.Equal(t, free, f.eng.freeWorkers(), "reserved workers were not freed")
			after, err := f.st.LeaseRowsForTest(t.Context())
			require.NoError(t, err)
			require.Equal(t, leases, after, "the write took a lease")
			claimed := f.claim(f.eng.perOwner)
			if first == 0 {
				require.Empty(t, claimed)
				return
			}
			require.Len(t, claimed, 1, "the claim does not find the event")
			require.Equal(t, "a", claimed[0].State.ID)
			if first > 0 {
				require.Equal(t, first, eventNumbers(claimed[0])[0])
			}
		})
	}
}

// TestHandoffSharesOutWorkersAndCap: a write that fires for several idle
// Subscriptions leases no more of them than the engine has free workers,
// and no more of one owner's than its cap allows, counting those it takes
// itself; the others are left to the claim.
func TestHandoffSharesOutWorkersAndCap(t *testing.T) {
	f := newHandoffFixture(t)
	f.eng.free, f.eng.perOwner = 2, 1
	for _, id := range []string{"a1", "a2", "b1", "c1"} {
		f.put(id, id[:1], "active")
	}
	defer f.handOff()()
	f.write("a1", "a2", "b1", "c1")
	tasks := f.eng.take()
	require.Len(t, tasks, 2)
	owners := map[string]int{}
	for _, tk := range tasks {
		owners[tk.State.Owner]++
		require.Equal(t, []int64{1}, eventNumbers(tk))
	}
	require.Equal(t, 1, owners["a"], "owner a: one hand-off under a cap of 1, got %v", owners)
	require.Equal(t, 2, f.eng.freeWorkers())
	var left []string
	for _, tk := range f.claim(0) {
		left = append(left, tk.State.ID)
	}
	require.Len(t, left, 2, "the claim does not find the rest")
}

// TestHandoffLeaseOutlivesItsEngine: an engine that dies after the commit
// that handed it a Subscription (the tasks never run) loses nothing: the
// lease keeps claims off until it ends, then a claim takes the
// Subscription with the event.
func TestHandoffLeaseOutlivesItsEngine(t *testing.T) {
	f := newHandoffFixture(t)
	f.eng.leaseFor = 300 * time.Millisecond
	f.put("a", "client", "active")
	stop := f.handOff()
	f.write("a")
	stop()
	require.Len(t, f.eng.take(), 1) // and dropped: the engine is gone
	require.Empty(t, f.claim(3), "claimed while the handed-off lease lasts")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tasks := f.claim(3); len(tasks) > 0 {
			require.Equal(t, "a", tasks[0].State.ID)
			require.Equal(t, []int64{1}, eventNumbers(tasks[0]))
			return
		}
		require.True(t, time.Now().Before(deadline), "the lease of a dead engine never ended")
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(20 * time.Millisecond): // the lease ends by the database's clock
		}
	}
}
