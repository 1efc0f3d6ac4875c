package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

// BenchmarkFinishDelivery is what recording one delivery outcome costs, with
// and without its attempt in the log (the same statement, a CTE): the
// database's side of the attempt log. Sub-benchmarks alternate with -count.
//
//	DATABASE_URL=… go test -run '^$' -bench FinishDelivery -count 6 ./internal/store/postgres
func BenchmarkFinishDelivery(b *testing.B) {
	for _, logged := range []bool{false, true} {
		b.Run(fmt.Sprintf("attempt=%v", logged), func(b *testing.B) {
			s := pgtest.New(b)
			ctx := context.Background()
			now := time.Now()
			require.NoError(b, s.InTx(ctx, func(tx store.Tx) error {
				return tx.PutSubscription(ctx, store.SubscriptionState{ID: "s1", Owner: "c", Status: "requested",
					Topic: "http://example.org/t", Endpoint: "https://example.org/h", Content: "id-only", CreatedAt: now, UpdatedAt: now})
			}))
			tasks, err := s.ClaimDue(ctx, now.Add(time.Second), 1, time.Hour, 0)
			require.NoError(b, err)
			require.Len(b, tasks, 1)
			a := &store.Attempt{Instance: "bench-1", Channel: "rest-hook", Kind: "event-notification", FirstEvent: 1, LastEvent: 1,
				Outcome: store.AttemptFailure, Class: "http-status", StatusCode: 503, Latency: 3 * time.Millisecond,
				ResponseBytes: 120, ResponseBody: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r := store.DeliveryResult{SubscriptionID: "s1", Lease: tasks[0].Lease, Now: now, Failed: true,
					Next: now.Add(time.Minute), KeepFor: time.Hour} // the lease stays: the next iteration finishes again
				if logged {
					a.At = now.Add(time.Duration(i) * time.Millisecond)
					r.Attempt = a
				}
				if err := s.FinishDelivery(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
