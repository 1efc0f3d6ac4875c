package postgres_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestFinishesRaceAppendsNothingLeftWaiting: writers append events while
// workers claim and record their outcomes through the finisher (batched,
// or alone behind a write's lock); once the writers stop, the workers
// deliver every event: none is left behind a recorded outcome.
func TestFinishesRaceAppendsNothingLeftWaiting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t, postgres.WithMaxConns(8))
	require.NoError(t, s.SeparateDeliveryPool(ctx, 3))
	now := time.Now().Truncate(time.Millisecond)
	const subs = 16
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		for i := range subs {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprintf("s%02d", i), Owner: "c", Status: "active",
				Topic: "http://example.org/fhir/SubscriptionTopic/t", Endpoint: "https://hooks.example.org/h",
				Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	}))
	ev := func(id string) store.Event {
		return store.Event{SubscriptionID: id, Timestamp: time.Now(), Topic: "http://example.org/fhir/SubscriptionTopic/t",
			FocusType: "Encounter", FocusID: "e", FocusVersion: 1, Method: store.MethodCreate}
	}
	var writers, workers sync.WaitGroup
	for range 4 {
		writers.Go(func() {
			for range 40 {
				a, b := rand.IntN(subs), rand.IntN(subs)
				err := s.InTx(ctx, func(tx store.Tx) error {
					evs := []store.Event{ev(fmt.Sprintf("s%02d", a))}
					if b != a {
						evs = append(evs, ev(fmt.Sprintf("s%02d", b)))
					}
					_, err := tx.AppendEvents(ctx, evs) // holds the rows until the commit
					return err
				})
				assert.NoError(t, err)
			}
		})
	}
	stop := make(chan struct{})
	wake := s.DeliveryWake()
	for range 4 {
		workers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tasks, err := s.ClaimDue(ctx, time.Now().Add(time.Hour), 4, time.Minute, 5, 0)
				if !assert.NoError(t, err) {
					return
				}
				if len(tasks) == 0 {
					select { // a commit's wake-up, or look again soon
					case <-wake:
					case <-stop:
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				var wg sync.WaitGroup
				for _, tk := range tasks {
					wg.Go(func() {
						r := store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Now: time.Now(),
							DeliveredThrough: tk.DeliveredThrough}
						switch n := len(tk.Events); {
						case n > 0:
							r.Sent, r.DeliveredThrough = true, tk.Events[n-1].Number
						case tk.Backlog():
							// The claim's row saw an event its snapshot of the
							// events did not (committed in between); the engine
							// reads such events itself. Here: due again now.
							r.Next = r.Now
						}
						err := s.FinishDelivery(ctx, r)
						if err != nil {
							assert.ErrorIs(t, err, store.ErrLeaseLost)
						}
					})
				}
				wg.Wait()
			}
		})
	}
	writers.Wait()
	// The workers drain what is due: wait for that, not for a while.
	require.Eventually(t, func() bool {
		st, err := s.DeliveryStats(ctx)
		return err == nil && st.OldestUndelivered.IsZero()
	}, 60*time.Second, 10*time.Millisecond, "events left undelivered while the workers ran")
	close(stop)
	workers.Wait()
	tasks, err := s.ClaimDue(ctx, time.Now().Add(time.Hour), subs, time.Minute, 0, 0)
	require.NoError(t, err)
	for _, tk := range tasks {
		require.Equal(t, tk.LastEventNumber, tk.DeliveredThrough, "%s still due with a backlog", tk.State.ID)
	}
	for i := range subs {
		id := fmt.Sprintf("s%02d", i)
		n, err := s.EventCount(ctx, id)
		require.NoError(t, err)
		events, err := s.Events(ctx, id, 1, 0, 0)
		require.NoError(t, err)
		require.Len(t, events, int(n))
	}
	states, err := s.DeliveryStats(ctx)
	require.NoError(t, err)
	require.True(t, states.OldestUndelivered.IsZero(), "an event left undelivered: %v", states.OldestUndelivered)
}
