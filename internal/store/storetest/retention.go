package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// Delivery cursors and event retention. Run lists these tests beside the
// others.

// appendSeries commits events 1..n of subID, one transaction each; event v
// has timestamp at(v, 321).
func appendSeries(t *testing.T, s store.Store, subID string, n int64) {
	t.Helper()
	for v := int64(1); v <= n; v++ {
		appendEvents(t, s, event(subID, "e1", v))
	}
}

func acknowledge(t *testing.T, s store.Store, subID string, through int64) {
	t.Helper()
	require.NoError(t, s.Acknowledge(t.Context(), subID, through), "acknowledge %s through %d", subID, through)
}

func requireAcknowledged(t *testing.T, s store.Store, subID string, want int64, msgAndArgs ...any) {
	t.Helper()
	n, err := s.Acknowledged(t.Context(), subID)
	require.NoError(t, err, msgAndArgs...)
	require.Equal(t, want, n, msgAndArgs...)
}

func prune(t *testing.T, s store.Store, before int, limit int) int64 {
	t.Helper()
	n, err := s.PruneEvents(t.Context(), at(before, 0), limit)
	require.NoError(t, err)
	return n
}

func requireCursorRange(t *testing.T, err error, msg string) {
	t.Helper()
	require.ErrorIs(t, err, store.ErrCursorRange, msg)
	require.NotErrorIs(t, err, store.ErrNotFound, msg)
	require.NotErrorIs(t, err, store.ErrConflict, msg)
}

func testAcknowledge(t *testing.T, s store.Store) {
	ctx := t.Context()
	err := s.Acknowledge(ctx, "nope", 0)
	require.ErrorIs(t, err, store.ErrNotFound, "Acknowledge of an absent subscription")
	_, err = s.Acknowledged(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "Acknowledged of an absent subscription")

	putSubs(t, s, sub("a"), sub("b"))
	requireAcknowledged(t, s, "a", 0, "a new subscription has acknowledged nothing")
	acknowledge(t, s, "a", 0)
	requireCursorRange(t, s.Acknowledge(ctx, "a", 1), "past the last event (there is none)")
	err = s.Acknowledge(ctx, "A", 0)
	require.ErrorIs(t, err, store.ErrNotFound, "ids are case-sensitive")

	appendSeries(t, s, "a", 3)
	acknowledge(t, s, "a", 2)
	requireAcknowledged(t, s, "a", 2)
	acknowledge(t, s, "a", 2) // again: a no-op
	requireAcknowledged(t, s, "a", 2)
	requireCursorRange(t, s.Acknowledge(ctx, "a", 1), "backwards")
	requireCursorRange(t, s.Acknowledge(ctx, "a", 0), "back to 0")
	requireCursorRange(t, s.Acknowledge(ctx, "a", -1), "negative")
	requireCursorRange(t, s.Acknowledge(ctx, "a", 4), "past the last event")
	requireAcknowledged(t, s, "a", 2, "refused moves change nothing")
	acknowledge(t, s, "a", 3)
	requireAcknowledged(t, s, "a", 3)
	requireAcknowledged(t, s, "b", 0, "cursors are per subscription")
	requireEventCount(t, s, "a", 3, "acknowledging does not touch the counter")
	require.Equal(t, span(1, 3), eventNumbers(allEvents(t, s, "a")), "acknowledging deletes nothing")

	// Replacing the state keeps the cursor; deleting it drops the cursor,
	// and a state put again starts from 0.
	a := sub("a")
	a.Status = "off"
	putSubs(t, s, a)
	requireAcknowledged(t, s, "a", 3, "replacing the state keeps the cursor")
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "a") }))
	_, err = s.Acknowledged(ctx, "a")
	require.ErrorIs(t, err, store.ErrNotFound, "after delete")
	putSubs(t, s, sub("a"))
	requireAcknowledged(t, s, "a", 0, "a re-created state starts at 0")
	requireCursorRange(t, s.Acknowledge(ctx, "a", 1), "a re-created state has no events")

	// Delete and re-create in one transaction.
	appendSeries(t, s, "b", 2)
	acknowledge(t, s, "b", 2)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSubscription(ctx, "b"); err != nil {
			return err
		}
		return tx.PutSubscription(ctx, sub("b"))
	}))
	requireAcknowledged(t, s, "b", 0, "re-created in one transaction")
}

func testEventPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"), sub("c"), sub("d"))
	appendSeries(t, s, "a", 6)
	appendSeries(t, s, "b", 3)
	appendSeries(t, s, "c", 3)
	acknowledge(t, s, "a", 4) // a: 1..4 acknowledged, 5 and 6 not
	acknowledge(t, s, "c", 3) // c: all acknowledged; b and d: nothing
	counts := map[string]int64{"a": 6, "b": 3, "c": 3, "d": 0}
	requireCounts := func(msg string) {
		t.Helper()
		for id, n := range counts {
			requireEventCount(t, s, id, n, "%s: EventCount of %s stays the last assigned number", msg, id)
		}
	}

	n, err := s.PruneEvents(ctx, at(1, 321), 0)
	require.NoError(t, err)
	require.Zero(t, n, "before is exclusive: an event exactly at it is kept")
	n, err = s.PruneEvents(ctx, base, 0)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is older than base")

	// Events 1 and 2 (at minutes 1 and 2) are old; 3 and later are young.
	require.EqualValues(t, 4, prune(t, s, 3, 0), "a1, a2, c1, c2")
	require.Equal(t, span(3, 6), eventNumbers(allEvents(t, s, "a")), "young acknowledged events are kept")
	require.Equal(t, span(1, 3), eventNumbers(allEvents(t, s, "b")), "old unacknowledged events are kept")
	require.Equal(t, []int64{3}, eventNumbers(allEvents(t, s, "c")))
	require.Empty(t, allEvents(t, s, "d"))
	requireCounts("after the first prune")
	require.Zero(t, prune(t, s, 3, 0), "pruning again with the same cut-off deletes nothing")

	// Everything is old now: only acknowledged events go.
	require.EqualValues(t, 3, prune(t, s, 100, 0), "a3, a4, c3")
	require.Equal(t, []int64{5, 6}, eventNumbers(allEvents(t, s, "a")), "unacknowledged events are kept, whatever their age")
	require.Equal(t, span(1, 3), eventNumbers(allEvents(t, s, "b")))
	require.Empty(t, allEvents(t, s, "c"))
	requireCounts("after the second prune")
	requireAcknowledged(t, s, "a", 4, "pruning does not move the cursor")
	requireAcknowledged(t, s, "c", 3)

	// Numbering continues from the counter, also for a subscription that
	// has no events left.
	require.Equal(t, []int64{7, 4}, appendEvents(t, s, event("a", "e2", 7), event("c", "e2", 4)))
	counts["a"], counts["c"] = 7, 4
	requireCounts("after appending")
	events, err := s.Events(ctx, "a", 1, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, eventNumbers(events))
	require.Equal(t, []int64{4}, eventNumbers(allEvents(t, s, "c")))

	// Acknowledging later makes the old events prunable.
	acknowledge(t, s, "b", 2)
	require.EqualValues(t, 2, prune(t, s, 100, 0))
	require.Equal(t, []int64{3}, eventNumbers(allEvents(t, s, "b")))
	requireCounts("at the end")

	// An off Subscription sends nothing: its old events go unacknowledged,
	// its young ones stay for $events, and numbering goes on.
	off := sub("off")
	off.Status = "off"
	putSubs(t, s, off)
	appendSeries(t, s, "off", 4)
	require.EqualValues(t, 2, prune(t, s, 3, 0), "off1, off2")
	require.Equal(t, span(3, 4), eventNumbers(allEvents(t, s, "off")))
	requireEventCount(t, s, "off", 4, "EventCount of an off Subscription stays the last assigned number")
	requireAcknowledged(t, s, "off", 0, "pruning does not move the cursor")
}

func testEventPruneLimit(t *testing.T, s store.Store) {
	putSubs(t, s, sub("a"), sub("b"))
	appendSeries(t, s, "a", 10)
	appendSeries(t, s, "b", 5)
	acknowledge(t, s, "a", 10)
	acknowledge(t, s, "b", 4)

	var total int64
	for _, want := range []int64{6, 6, 2, 0} {
		require.EqualValues(t, want, prune(t, s, 100, 6), "at most limit per call, until none are left (total so far %d)", total)
		total += want
		left := len(allEvents(t, s, "a")) + len(allEvents(t, s, "b"))
		require.EqualValues(t, 15-total, left, "exactly the reported number were deleted")
	}
	require.Empty(t, allEvents(t, s, "a"))
	require.Equal(t, []int64{5}, eventNumbers(allEvents(t, s, "b")), "the unacknowledged event survives")
	requireEventCount(t, s, "a", 10)
	requireEventCount(t, s, "b", 5)

	// limit 1, and a negative limit is no limit.
	appendSeries(t, s, "b", 3) // numbers 6..8, timestamps minutes 1..3
	acknowledge(t, s, "b", 8)
	require.EqualValues(t, 1, prune(t, s, 100, 1))
	require.EqualValues(t, 3, prune(t, s, 100, -1))
	require.Empty(t, allEvents(t, s, "b"))
	requireEventCount(t, s, "b", 8)
}

// testEventPruneTx: pruning only sees committed events; a transaction's own
// appends, and the events of a state it deletes, are not its business.
func testEventPruneTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"))
	appendSeries(t, s, "a", 2)
	acknowledge(t, s, "a", 2)
	err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.AppendEvent(ctx, event("a", "e9", 1))
		return errors.Join(err, errors.New("roll back"))
	})
	require.Error(t, err)
	require.EqualValues(t, 2, prune(t, s, 100, 0))
	requireEventCount(t, s, "a", 2)
	require.Equal(t, []int64{3}, appendEvents(t, s, event("a", "e9", 3)))
	require.Equal(t, []int64{3}, eventNumbers(allEvents(t, s, "a")))
}

// testEventPruneConcurrent: pruners racing over the same events (several
// Herald instances) delete each event once and report it once.
func testEventPruneConcurrent(t *testing.T, s store.Store) {
	const events, pruners, limit = 200, 4, 7
	putSubs(t, s, sub("a"))
	var evs []store.Event
	for v := int64(1); v <= events; v++ {
		evs = append(evs, event("a", "e1", v%50+1))
	}
	appendEvents(t, s, evs...)
	acknowledge(t, s, "a", events)

	start := make(chan struct{})
	type result struct {
		deleted int64
		err     error
	}
	results := make(chan result, pruners)
	for range pruners {
		go func() {
			<-start
			var r result
			for {
				n, err := s.PruneEvents(t.Context(), at(100, 0), limit)
				if err == nil && n > limit {
					err = fmt.Errorf("deleted %d, more than the limit %d", n, limit)
				}
				if err != nil {
					r.err = err
					break
				}
				r.deleted += n
				if n == 0 {
					break
				}
			}
			results <- r
		}()
	}
	close(start)
	var total int64
	for range pruners {
		r := await(t, results, "racing pruners")
		require.NoError(t, r.err)
		total += r.deleted
	}
	require.EqualValues(t, events, total, "every event deleted and counted once")
	require.Empty(t, allEvents(t, s, "a"))
	requireEventCount(t, s, "a", events)
}
