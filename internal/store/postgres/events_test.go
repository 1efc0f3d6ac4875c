package postgres_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// BenchmarkAppendEvent appends one event per transaction, each goroutine to
// a Subscription of its own, so the subscriptions row locks never collide:
// the cost of numbering an event, not of waiting for another appender.
func BenchmarkAppendEvent(b *testing.B) {
	s := pgtest.New(b, postgres.WithMaxConns(postgres.DefaultMaxConns))
	ctx := b.Context()
	// RunParallel starts exactly this many goroutines.
	goroutines := benchParallelism * runtime.GOMAXPROCS(0)
	now := time.Now().Truncate(time.Millisecond)
	err := s.InTx(ctx, func(tx store.Tx) error {
		for i := range goroutines {
			err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprint("s", i), Owner: "bench",
				Status: "active", Topic: "http://example.org/fhir/SubscriptionTopic/bench",
				Endpoint: "https://hooks.example.org/bench", Content: "id-only", CreatedAt: now, UpdatedAt: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(b, err)

	var claimed, focus atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		subID := fmt.Sprint("s", claimed.Add(1)-1)
		for pb.Next() {
			e := store.Event{SubscriptionID: subID, Timestamp: time.Now().Truncate(time.Millisecond),
				Topic: "http://example.org/fhir/SubscriptionTopic/bench", FocusType: "Encounter",
				FocusID: fmt.Sprint("e", focus.Add(1)), FocusVersion: 1, Method: store.MethodCreate}
			err := s.InTx(ctx, func(tx store.Tx) error {
				_, err := tx.AppendEvent(ctx, e)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSecond(b)
	b.StopTimer()

	// Every goroutine's subscription got a gap-free run of numbers.
	var total int64
	for i := range goroutines {
		n, err := s.EventCount(ctx, fmt.Sprint("s", i))
		require.NoError(b, err)
		total += n
	}
	require.EqualValues(b, b.N, total, "one event per operation")
}
