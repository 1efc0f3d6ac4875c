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

// TestAppendIsPlannedOnce: the statements that append a write's events,
// with includes to resolve, reach a generic plan after PostgreSQL's first
// custom ones, instead of being planned anew for every event (the includes
// subquery used to make every custom plan look cheaper than the generic
// one, whose guess joined the refs to a scan of resources).
func TestAppendIsPlannedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t, postgres.WithMaxConns(1))
	now := time.Now().Truncate(time.Millisecond)
	const topic = "http://example.org/fhir/SubscriptionTopic/t"
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, id := range []string{"s1", "s2"} {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: id, Owner: "c", Status: "active", Topic: topic,
				Endpoint: "https://hooks.example.org/h", Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		// Enough resources that a plan scanning them costs what it would
		// in production: with a handful, even the bad generic plan is cheap.
		for i := 1; i <= 5000; i++ {
			id := fmt.Sprint("p", i)
			if err := tx.Put(ctx, store.Version{Type: "Patient", ID: id, VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
				Body: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.AnalyzeForTest(ctx))

	const appends = 12
	for i := range appends {
		ev := func(sub string) store.Event {
			return store.Event{SubscriptionID: sub, Timestamp: now, Topic: topic, FocusType: "Encounter",
				FocusID: fmt.Sprint("e", i), FocusVersion: 1, Method: store.MethodCreate,
				Includes: []store.VersionRef{{Type: "Patient", ID: "p1"}}}
		}
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.AppendEventsAtCommit(ctx, []store.Event{ev("s1")}); err != nil { // one event
				return err
			}
			return tx.AppendEventsAtCommit(ctx, []store.Event{ev("s1"), ev("s2")}) // a batch
		})
		require.NoError(t, err)
	}
	events, err := s.Events(ctx, "s1", 1, 0, 0)
	require.NoError(t, err)
	require.Len(t, events, 2*appends)
	require.Equal(t, []store.VersionRef{{Type: "Patient", ID: "p1", Version: 1}}, events[0].Includes, "the head version, resolved at append")

	generic, custom, err := s.PreparedPlansForTest(ctx, "INSERT INTO events")
	require.NoError(t, err)
	require.LessOrEqual(t, custom, int64(2*5), "custom plans beyond the first five of each statement")
	require.GreaterOrEqual(t, generic, int64(2*(appends-5)), "generic plans")
}
