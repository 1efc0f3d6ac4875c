package retention_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/retention"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
)

// waitLimit bounds every wait; it is a deadline, never a pause.
const waitLimit = 10 * time.Second

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// seed creates subscription id with one event per age (oldest first) and
// acknowledges the first acked of them.
func seed(t *testing.T, s *memory.Store, id string, acked int64, ages ...time.Duration) {
	t.Helper()
	ctx := t.Context()
	err := s.InTx(ctx, func(tx store.Tx) error {
		err := tx.PutSubscription(ctx, store.SubscriptionState{
			ID: id, Owner: "client", Status: "active", Topic: "http://example.org/topic",
			Endpoint: "https://example.org/hook", Content: "id-only", CreatedAt: now, UpdatedAt: now,
		})
		if err != nil {
			return err
		}
		for i, age := range ages {
			_, err := tx.AppendEvent(ctx, store.Event{
				SubscriptionID: id, Timestamp: now.Add(-age), Topic: "http://example.org/topic",
				FocusType: "Encounter", FocusID: "e1", FocusVersion: int64(i + 1), Method: store.MethodUpdate,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.Acknowledge(ctx, id, acked))
}

func numbers(t *testing.T, s store.EventReader, id string) []int64 {
	t.Helper()
	evs, err := s.Events(t.Context(), id, 1, 0, 0)
	require.NoError(t, err)
	var out []int64
	for _, e := range evs {
		out = append(out, e.Number)
	}
	return out
}

func repeat(n int, age time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = age
	}
	return out
}

func TestPruneOnce(t *testing.T) {
	s := memory.New()
	seed(t, s, "a", 4, 40*day, 40*day, 31*day, 29*day) // 1..3 old, 4 young; all acknowledged
	seed(t, s, "b", 0, 90*day, 60*day)                 // old, unacknowledged
	seed(t, s, "c", 2, 40*day, 40*day, 40*day)         // 3 old, unacknowledged
	j := &retention.Janitor{Store: s, Retention: 30 * day, Now: func() time.Time { return now }, Logger: logger(t)}

	n, err := j.PruneOnce(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.Equal(t, []int64{4}, numbers(t, s, "a"), "young acknowledged events are kept")
	require.Equal(t, []int64{1, 2}, numbers(t, s, "b"), "unacknowledged events are kept, whatever their age")
	require.Equal(t, []int64{3}, numbers(t, s, "c"))
	for id, want := range map[string]int64{"a": 4, "b": 2, "c": 3} {
		got, err := s.EventCount(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, want, got, "EventCount of %s", id)
	}

	n, err = j.PruneOnce(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to prune")

	// Time passes: event a4 is old now.
	j.Now = func() time.Time { return now.Add(2 * day) }
	n, err = j.PruneOnce(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Empty(t, numbers(t, s, "a"))
}

func TestPruneOnceDisabled(t *testing.T) {
	s := memory.New()
	seed(t, s, "a", 2, 400*day, 400*day)
	for _, r := range []time.Duration{0, -time.Hour} {
		j := &retention.Janitor{Store: s, Retention: r, Logger: logger(t)}
		n, err := j.PruneOnce(t.Context())
		require.NoError(t, err)
		require.Zero(t, n)
	}
	require.Equal(t, []int64{1, 2}, numbers(t, s, "a"))
}

func TestPruneOnceDefaultClock(t *testing.T) {
	s := memory.New()
	// Relative to the real clock, as the janitor's default Now is.
	clock := time.Now()
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.PutSubscription(t.Context(), store.SubscriptionState{ID: "a", Owner: "c", Status: "active",
			Content: "empty", CreatedAt: clock, UpdatedAt: clock}); err != nil {
			return err
		}
		for i, ts := range []time.Time{clock.Add(-48 * time.Hour), clock.Add(time.Hour)} {
			if _, err := tx.AppendEvent(t.Context(), store.Event{SubscriptionID: "a", Timestamp: ts,
				FocusType: "Encounter", FocusID: "e1", FocusVersion: int64(i + 1), Method: store.MethodUpdate}); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.Acknowledge(t.Context(), "a", 2))
	n, err := (&retention.Janitor{Store: s, Retention: 24 * time.Hour}).PruneOnce(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, []int64{2}, numbers(t, s, "a"))
}

// recorder wraps a pruner, records each call's limit and result, and
// reports each call on calls (when set, without blocking).
type recorder struct {
	store.EventPruner
	fail  func(call int) error // nil: never
	calls chan int64

	mu      sync.Mutex
	limits  []int
	results []int64
	befores []time.Time
}

func (r *recorder) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	r.mu.Lock()
	call := len(r.limits)
	r.limits = append(r.limits, limit)
	r.befores = append(r.befores, before)
	r.mu.Unlock()
	var n int64
	var err error
	if r.fail != nil {
		err = r.fail(call)
	}
	if err == nil {
		n, err = r.EventPruner.PruneEvents(ctx, before, limit)
	}
	r.mu.Lock()
	r.results = append(r.results, n)
	r.mu.Unlock()
	if r.calls != nil {
		select {
		case r.calls <- n:
		default:
		}
	}
	return n, err
}

func TestPruneOnceBatches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		events  int
		batch   int
		results []int64
	}{
		{"short last batch", 25, 10, []int64{10, 10, 5}},
		{"exact multiple", 20, 10, []int64{10, 10, 0}},
		{"one batch", 3, 10, []int64{3}},
		{"nothing", 0, 10, []int64{0}},
		{"default batch size", 1500, 0, []int64{1000, 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memory.New()
			seed(t, s, "a", int64(tc.events), repeat(tc.events, 60*day)...)
			r := &recorder{EventPruner: s}
			j := &retention.Janitor{Store: r, Retention: 30 * day, Now: func() time.Time { return now }, BatchSize: tc.batch, Logger: logger(t)}
			n, err := j.PruneOnce(t.Context())
			require.NoError(t, err)
			require.EqualValues(t, tc.events, n)
			require.Equal(t, tc.results, r.results)
			wantBatch := tc.batch
			if wantBatch == 0 {
				wantBatch = retention.DefaultBatchSize
			}
			for i, l := range r.limits {
				require.Equal(t, wantBatch, l)
				require.True(t, now.Add(-30*day).Equal(r.befores[i]), "the cut-off is now minus the retention, fixed for the run")
			}
			require.Empty(t, numbers(t, s, "a"))
		})
	}
}

func TestPruneOnceError(t *testing.T) {
	s := memory.New()
	seed(t, s, "a", 25, repeat(25, 60*day)...)
	errBoom := errors.New("boom")
	r := &recorder{EventPruner: s, fail: func(call int) error {
		if call == 1 {
			return errBoom
		}
		return nil
	}}
	j := &retention.Janitor{Store: r, Retention: 30 * day, Now: func() time.Time { return now }, BatchSize: 10, Logger: logger(t)}
	n, err := j.PruneOnce(t.Context())
	require.ErrorIs(t, err, errBoom)
	require.EqualValues(t, 10, n, "what was deleted before the error is counted")
	require.Len(t, r.limits, 2, "no call after the error")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n, err = j.PruneOnce(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, n)
	require.Len(t, r.limits, 2, "a done context stops before calling the store")
}

// runJanitor starts j.Run and returns a stop function that cancels it and
// waits (with a deadline) for Run to return.
func runJanitor(t *testing.T, j *retention.Janitor) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	return func() {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
}

// awaitCalls waits until r has reported n calls, or fails after waitLimit.
func awaitCalls(t *testing.T, r *recorder, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for range n {
		select {
		case <-r.calls:
		case <-deadline:
			t.Fatalf("timed out waiting for %d prune calls", n)
		}
	}
}

func TestRun(t *testing.T) {
	s := memory.New()
	seed(t, s, "a", 3, 60*day, 60*day, 60*day)
	r := &recorder{EventPruner: s, calls: make(chan int64, 1)}
	j := &retention.Janitor{Store: r, Retention: 30 * day, Interval: time.Millisecond,
		Now: func() time.Time { return now }, Logger: logger(t)}
	stop := runJanitor(t, j)
	// The first run starts at once; later ones come from the ticker.
	awaitCalls(t, r, 3)
	stop()
	require.Empty(t, numbers(t, s, "a"), "the first run pruned")
	count, err := s.EventCount(t.Context(), "a")
	require.NoError(t, err)
	require.EqualValues(t, 3, count)
}

func TestRunKeepsGoingAfterErrors(t *testing.T) {
	s := memory.New()
	seed(t, s, "a", 1, 60*day)
	r := &recorder{EventPruner: s, calls: make(chan int64, 1), fail: func(call int) error {
		if call < 2 {
			return errors.New("database unreachable")
		}
		return nil
	}}
	j := &retention.Janitor{Store: r, Retention: 30 * day, Interval: time.Millisecond,
		Now: func() time.Time { return now }, Logger: logger(t)}
	stop := runJanitor(t, j)
	deadline := time.After(waitLimit)
	for pruned := false; !pruned; {
		select {
		case n := <-r.calls:
			pruned = n == 1
		case <-deadline:
			t.Fatal("the janitor never recovered from the errors")
		}
	}
	stop()
	require.Empty(t, numbers(t, s, "a"))
}

func TestRunDisabledReturns(t *testing.T) {
	r := &recorder{EventPruner: memory.New()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&retention.Janitor{Store: r, Logger: logger(t)}).Run(t.Context())
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Run with no retention did not return")
	}
	require.Empty(t, r.limits)
}

func TestRunStopsWhenCancelledMidRun(t *testing.T) {
	// The store blocks until the context is done, as a slow DELETE would.
	ctx, cancel := context.WithCancel(t.Context())
	entered := make(chan struct{})
	j := &retention.Janitor{Store: blocking{entered}, Retention: time.Hour, Interval: time.Hour, Logger: logger(t)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("Run did not prune at start")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

type blocking struct{ entered chan struct{} }

func (b blocking) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	close(b.entered)
	<-ctx.Done()
	return 0, ctx.Err()
}
