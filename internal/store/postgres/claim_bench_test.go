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

// BenchmarkClaimDue measures one claim of 32 (the default workers, each
// owner capped at 24 as by default) from a queue of due Subscriptions. Each
// claimed batch is released again; others/op is how many of the 32 went to
// owners other than the one whose Subscription is due first. The shapes:
//
//   - due=N: N due Subscriptions spread evenly over 10 owners;
//   - skewed: one owner with 20,000 Subscriptions due before those of 10
//     others, which have 5 each (hanging endpoints retried at backoff);
//   - owners=1000: 20,000 due Subscriptions of 1,000 owners (the claim
//     visits every owner with scheduled work, so this is what its cost
//     grows with).
func BenchmarkClaimDue(b *testing.B) {
	shapes := []struct {
		name  string
		owner func(i int) string // of the i-th Subscription, earliest due first
		due   int
	}{
		{"due=1000", func(i int) string { return fmt.Sprintf("owner-%d", i%10) }, 1_000},
		{"due=20000", func(i int) string { return fmt.Sprintf("owner-%d", i%10) }, 20_000},
		{"skewed", func(i int) string {
			if i < 20_000 {
				return "busy-owner"
			}
			return fmt.Sprintf("owner-%d", i%10)
		}, 20_050},
		{"owners=1000", func(i int) string { return fmt.Sprintf("owner-%d", i%1000) }, 20_000},
	}
	for _, shape := range shapes {
		b.Run(shape.name, func(b *testing.B) {
			st := pgtest.New(b)
			ctx := context.Background()
			past := time.Now().Add(-time.Hour)
			const batch = 500
			for from := 0; from < shape.due; from += batch {
				require.NoError(b, st.InTx(ctx, func(tx store.Tx) error {
					for i := from; i < min(from+batch, shape.due); i++ {
						at := past.Add(time.Duration(i) * time.Millisecond)
						err := tx.PutSubscription(ctx, store.SubscriptionState{
							ID: fmt.Sprintf("s%06d", i), Owner: shape.owner(i), Context: "system",
							Status: "requested", Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
							Content: "id-only", CreatedAt: at, UpdatedAt: at,
						})
						if err != nil {
							return err
						}
					}
					return nil
				}))
			}
			others := 0 // tasks of owners other than the earliest due one's
			b.ResetTimer()
			for range b.N {
				tasks, err := st.ClaimDue(ctx, time.Now(), 32, time.Minute, 0, 24)
				require.NoError(b, err)
				require.NotEmpty(b, tasks)
				b.StopTimer()
				for _, tk := range tasks {
					if tk.State.Owner != shape.owner(0) {
						others++
					}
					require.NoError(b, st.ReleaseLease(ctx, tk.State.ID, tk.Lease))
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(others)/float64(b.N), "others/op")
		})
	}
}
