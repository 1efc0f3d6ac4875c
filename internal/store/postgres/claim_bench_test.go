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

// BenchmarkClaimDue measures one claim of 32 (the default workers) from a
// queue of due Subscriptions: the claim ranks every due row by owner
// (round-robin shares), so its cost grows with the due rows, not only with
// the 32 it takes. Each claimed batch is released again.
func BenchmarkClaimDue(b *testing.B) {
	for _, due := range []int{1_000, 20_000} {
		b.Run(fmt.Sprintf("due=%d", due), func(b *testing.B) {
			st := pgtest.New(b)
			ctx := context.Background()
			past := time.Now().Add(-time.Hour)
			const batch = 500
			for from := 0; from < due; from += batch {
				require.NoError(b, st.InTx(ctx, func(tx store.Tx) error {
					for i := from; i < min(from+batch, due); i++ {
						err := tx.PutSubscription(ctx, store.SubscriptionState{
							ID: fmt.Sprintf("s%06d", i), Owner: fmt.Sprintf("owner-%d", i%10), Context: "system",
							Status: "requested", Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
							Content: "id-only", CreatedAt: past, UpdatedAt: past,
						})
						if err != nil {
							return err
						}
					}
					return nil
				}))
			}
			b.ResetTimer()
			for range b.N {
				tasks, err := st.ClaimDue(ctx, time.Now(), 32, time.Minute, 0, 24)
				require.NoError(b, err)
				require.NotEmpty(b, tasks)
				b.StopTimer()
				for _, tk := range tasks {
					require.NoError(b, st.ReleaseLease(ctx, tk.State.ID, tk.Lease))
				}
				b.StartTimer()
			}
		})
	}
}
