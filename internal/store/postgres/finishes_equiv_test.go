package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestFinishBatchIsFinishSQL: the outcomes a finisher records in one
// statement leave every row and the attempt log as finishSQL and
// finishLoggedSQL, one by one, leave them.
func TestFinishBatchIsFinishSQL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	later := now.Add(time.Minute)
	attempt := &store.Attempt{At: now, Instance: "i", Channel: "rest-hook", Kind: "event-notification",
		FirstEvent: 1, LastEvent: 2, Outcome: "delivered", StatusCode: 200, Latency: time.Millisecond}
	variants := []func(tk store.DeliveryTask) store.DeliveryResult{
		func(tk store.DeliveryTask) store.DeliveryResult { // all sent, released
			return store.DeliveryResult{Now: now, Sent: true, DeliveredThrough: 3, Attempt: attempt}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // some sent: due again now
			return store.DeliveryResult{Now: now, Sent: true, DeliveredThrough: 1, Next: later, Attempt: attempt}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // beyond the last event
			return store.DeliveryResult{Now: now, Sent: true, DeliveredThrough: 9, Next: later}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // failed, released
			return store.DeliveryResult{Now: now, Failed: true, Next: later, Attempt: attempt}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // failed, lease kept
			return store.DeliveryResult{Now: now, Failed: true, Next: later, KeepFor: time.Minute, Attempt: attempt}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // handshake
			return store.DeliveryResult{Now: now, Sent: true, Handshaken: true, DeliveredThrough: 0, Next: later, Attempt: attempt}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // nothing sent, idle
			return store.DeliveryResult{Now: now, Next: later}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // extension
			return store.DeliveryResult{Now: now, Next: now, KeepFor: 2 * time.Minute}
		},
		func(tk store.DeliveryTask) store.DeliveryResult { // lease lost
			return store.DeliveryResult{Now: now, Sent: true, DeliveredThrough: 3, Attempt: attempt, Lease: "lost"}
		},
	}
	type result struct {
		rows []string
		errs []string
	}
	run := func(separate bool) result {
		url := pgtest.URL(t)
		s, err := postgres.Open(ctx, url, postgres.WithMaxConns(4))
		require.NoError(t, err)
		defer s.Close()
		if separate {
			require.NoError(t, s.SeparateDeliveryPool(ctx, 2))
		}
		require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
			for i := range variants {
				id := fmt.Sprint("s", i)
				if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: id, Owner: "c", Status: "active",
					Topic: "http://example.org/fhir/SubscriptionTopic/t", Endpoint: "https://hooks.example.org/h",
					Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
				for range 3 {
					if _, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: id, Timestamp: now,
						Topic: "http://example.org/fhir/SubscriptionTopic/t", FocusType: "Encounter", FocusID: "e",
						FocusVersion: 1, Method: store.MethodCreate}); err != nil {
						return err
					}
				}
			}
			return nil
		}))
		tasks, err := s.ClaimDue(ctx, now, len(variants), time.Minute, 10, 0)
		require.NoError(t, err)
		require.Len(t, tasks, len(variants))
		errs := make([]string, len(variants))
		finish := func(i int, tk store.DeliveryTask) {
			r := variants[i](tk)
			r.SubscriptionID = tk.State.ID
			if r.Lease == "" {
				r.Lease = tk.Lease
			}
			errs[i] = fmt.Sprint(s.FinishDelivery(ctx, r))
		}
		if separate {
			release, queued, statements := s.HoldFinishesForTest()
			var wg sync.WaitGroup
			for _, tk := range tasks {
				var i int
				_, _ = fmt.Sscanf(tk.State.ID, "s%d", &i)
				wg.Go(func() { finish(i, tk) })
			}
			require.Eventually(t, func() bool { return queued() == len(variants)-1 }, 10*time.Second, time.Millisecond)
			release()
			wg.Wait()
			require.Equal(t, 1, statements())
		} else {
			for _, tk := range tasks {
				var i int
				_, _ = fmt.Sscanf(tk.State.ID, "s%d", &i)
				finish(i, tk)
			}
		}
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		rows, err := conn.Query(ctx, `SELECT concat_ws(' ', s.id, s.delivered_through, s.last_event_number, s.failure_count,
				s.last_sent_at, s.handshake_pending, s.due_at, s.lease_token IS NULL,
				round(extract(epoch FROM s.lease_until - now())), l.id IS NULL,
				(SELECT count(*) FROM delivery_attempts a WHERE a.subscription_id = s.id))
			FROM subscriptions s LEFT JOIN subscription_leases l ON l.id = s.id ORDER BY s.id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return result{rows: got, errs: errs}
	}
	single, batch := run(false), run(true)
	require.Equal(t, single.errs, batch.errs)
	require.Equal(t, single.rows, batch.rows)
	t.Log(single.rows, single.errs)
}
