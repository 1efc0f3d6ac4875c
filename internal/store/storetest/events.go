package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// Notification events: numbering, transactions and the link to the
// subscription state. Run lists these tests beside the others.

// event builds the event a write of focus Encounter/<focus> version v makes
// for subscription subID. Timestamps have millisecond precision and a zone
// of their own; the store keeps the instant, not the zone. Number is set to
// a value the store must ignore.
func event(subID, focus string, v int64) store.Event {
	zone := time.FixedZone("UTC+02:00", 2*3600)
	m := store.MethodUpdate
	if v == 1 {
		m = store.MethodCreate
	}
	return store.Event{
		SubscriptionID: subID,
		Number:         -7,
		Timestamp:      at(int(v), 321).In(zone),
		Topic:          topicA,
		FocusType:      "Encounter",
		FocusID:        focus,
		FocusVersion:   v,
		Method:         m,
	}
}

// numbered returns e as the store returns it under number n.
func numbered(e store.Event, n int64) store.Event {
	e.Number = n
	return e
}

// requireEvents compares events field by field, timestamps with Equal.
func requireEvents(t *testing.T, want, got []store.Event, msgAndArgs ...any) {
	t.Helper()
	msg := fmt.Sprint(msgAndArgs...)
	require.Equal(t, eventNumbers(want), eventNumbers(got), "numbers %s", msg)
	for i := range want {
		w, g := want[i], got[i]
		require.Truef(t, w.Timestamp.Equal(g.Timestamp), "Timestamp %s [%d]: want %s, got %s", msg, i, w.Timestamp, g.Timestamp)
		w.Timestamp, g.Timestamp = time.Time{}, time.Time{}
		require.Equal(t, w, g, "%s [%d]", msg, i)
	}
}

// eventNumbers lists the numbers of events; nil when there are none.
func eventNumbers(evs []store.Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Number)
	}
	return out
}

// span returns the numbers from..to.
func span(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// appendEvents commits evs in one transaction and returns their numbers.
func appendEvents(t *testing.T, s store.Store, evs ...store.Event) []int64 {
	t.Helper()
	var nums []int64
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		nums = nil // fn may run again
		for _, e := range evs {
			n, err := tx.AppendEvent(t.Context(), e)
			if err != nil {
				return err
			}
			nums = append(nums, n)
		}
		return nil
	})
	require.NoError(t, err, "append events")
	return nums
}

// requireEventCount reads the counter through r.
func requireEventCount(t *testing.T, r store.EventReader, subID string, want int64, msgAndArgs ...any) {
	t.Helper()
	n, err := r.EventCount(t.Context(), subID)
	require.NoError(t, err, msgAndArgs...)
	require.Equal(t, want, n, msgAndArgs...)
}

// allEvents reads every event of subID through r.
func allEvents(t *testing.T, r store.EventReader, subID string) []store.Event {
	t.Helper()
	evs, err := r.Events(t.Context(), subID, 1, 0, 0)
	require.NoError(t, err)
	return evs
}

func testEventNumbering(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"))
	requireEventCount(t, s, "a", 0, "a new subscription has no events")
	require.Empty(t, allEvents(t, s, "a"))

	e1, e2, e3 := event("a", "e1", 1), event("a", "e1", 2), event("a", "e2", 1)
	e2.Method, e2.Topic = store.MethodDelete, topicB
	require.Equal(t, []int64{1}, appendEvents(t, s, e1), "numbering starts at 1; e.Number is ignored")
	require.Equal(t, []int64{2, 3}, appendEvents(t, s, e2, e3), "several in one transaction")
	var more []store.Event
	for v := int64(1); v <= 4; v++ {
		more = append(more, event("a", "e3", v))
		require.Equal(t, []int64{3 + v}, appendEvents(t, s, more[v-1]), "one per transaction")
	}

	want := []store.Event{numbered(e1, 1), numbered(e2, 2), numbered(e3, 3)}
	for i, e := range more {
		want = append(want, numbered(e, int64(4+i)))
	}
	requireEvents(t, want, allEvents(t, s, "a"), "every field is kept")
	requireEventCount(t, s, "a", 7)
	for _, e := range allEvents(t, s, "a") {
		require.Equal(t, time.UTC, e.Timestamp.Location(), "timestamps come back in UTC")
	}

	// Inside a transaction, appends are visible to it and to no one else.
	outside := func() ([]store.Event, int64) {
		type view struct {
			evs       []store.Event
			n         int64
			err, err2 error
		}
		ch := make(chan view, 1)
		go func() {
			var v view
			v.evs, v.err = s.Events(ctx, "a", 1, 0, 0)
			v.n, v.err2 = s.EventCount(ctx, "a")
			ch <- v
		}()
		v := await(t, ch, "a read outside an open transaction (readers must not wait for writers)")
		require.NoError(t, v.err)
		require.NoError(t, v.err2)
		return v.evs, v.n
	}
	e8 := event("a", "e4", 1)
	err := s.InTx(ctx, func(tx store.Tx) error {
		n, err := tx.AppendEvent(ctx, e8)
		require.NoError(t, err)
		require.EqualValues(t, 8, n)
		requireEventCount(t, tx, "a", 8, "Tx.EventCount sees the Tx's own append")
		requireEvents(t, append(slices.Clone(want), numbered(e8, 8)), allEvents(t, tx, "a"), "Tx.Events sees the Tx's own append")
		evs, n := outside()
		requireEvents(t, want, evs, "outside: an uncommitted append is invisible")
		require.EqualValues(t, 7, n, "outside: the counter has not moved")
		return nil
	})
	require.NoError(t, err)
	evs, n := outside()
	requireEvents(t, append(want, numbered(e8, 8)), evs, "visible after commit")
	require.EqualValues(t, 8, n)
}

func testEventRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"))
	e1 := event("a", "e1", 1)
	appendEvents(t, s, e1)

	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Tx) error {
		for v := int64(2); v <= 4; v++ {
			n, err := tx.AppendEvent(ctx, event("a", "e1", v))
			require.NoError(t, err)
			require.Equal(t, v, n)
		}
		n, err := tx.AppendEvent(ctx, event("b", "e1", 2))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	require.ErrorIs(t, err, errBoom, "InTx returns fn's error")

	requireEvents(t, []store.Event{numbered(e1, 1)}, allEvents(t, s, "a"), "rolled-back events are gone")
	requireEventCount(t, s, "a", 1, "the counter of a rolled-back transaction does not advance")
	require.Empty(t, allEvents(t, s, "b"))
	requireEventCount(t, s, "b", 0)

	// The next committed append gets the number the rolled-back one had.
	e2 := event("a", "e5", 1)
	require.Equal(t, []int64{2}, appendEvents(t, s, e2))
	require.Equal(t, []int64{1}, appendEvents(t, s, event("b", "e5", 1)))
	requireEvents(t, []store.Event{numbered(e1, 1), numbered(e2, 2)}, allEvents(t, s, "a"))
}

// testEventRollbackWhileOthersWait: A appends and holds the subscription
// while B starts appending to it; A rolls back, and B gets the number A had.
// Where the store runs transactions concurrently B waits for A; either way
// the outcome is the same.
func testEventRollbackWhileOthersWait(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"))
	errBoom := errors.New("boom")
	aAppended := make(chan struct{})
	bStarting := make(chan struct{})
	aDone := make(chan error, 1)
	type result struct {
		number int64
		err    error
	}
	bDone := make(chan result, 1)
	go func() {
		aDone <- s.InTx(ctx, func(tx store.Tx) error {
			n, err := tx.AppendEvent(ctx, event("a", "rolled-back", 1))
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("A got number %d, want 1", n)
			}
			close(aAppended)
			// B starts its transaction now and, where the store allows
			// concurrent transactions, waits in AppendEvent.
			<-bStarting
			return errBoom
		})
	}()
	go func() {
		select {
		case <-aAppended:
		case <-ctx.Done():
		}
		close(bStarting)
		var r result
		r.err = s.InTx(ctx, func(tx store.Tx) error {
			var err error
			r.number, err = tx.AppendEvent(ctx, event("a", "committed", 1))
			return err
		})
		bDone <- r
	}()
	require.ErrorIs(t, await(t, aDone, "transaction A"), errBoom)
	b := await(t, bDone, "transaction B")
	require.NoError(t, b.err)
	require.EqualValues(t, 1, b.number, "B reuses the number A rolled back")
	evs := allEvents(t, s, "a")
	require.Equal(t, []int64{1}, eventNumbers(evs))
	require.Equal(t, "committed", evs[0].FocusID)
	requireEventCount(t, s, "a", 1)
}

// testEventConcurrentAppends: n transactions racing to append to one
// subscription get exactly the numbers 1..n, each once, and each number is
// stored with the event of the transaction that got it.
func testEventConcurrentAppends(t *testing.T, s store.Store) {
	const n = 20
	ctx := t.Context()
	putSubs(t, s, sub("a"))
	type result struct {
		focus  string
		number int64
		err    error
	}
	start := make(chan struct{})
	results := make(chan result, n)
	for i := range n {
		go func() {
			<-start
			r := result{focus: fmt.Sprint("e", i)}
			r.err = s.InTx(ctx, func(tx store.Tx) error {
				var err error
				r.number, err = tx.AppendEvent(ctx, event("a", r.focus, 1))
				return err
			})
			results <- r
		}()
	}
	close(start)
	byNumber := make(map[int64]string)
	var got []int64
	for range n {
		r := await(t, results, "racing appenders")
		require.NoError(t, r.err, r.focus)
		byNumber[r.number] = r.focus
		got = append(got, r.number)
	}
	slices.Sort(got)
	require.Equal(t, span(1, n), got, "each of 1..%d exactly once", n)

	evs := allEvents(t, s, "a")
	require.Equal(t, span(1, n), eventNumbers(evs))
	for _, e := range evs {
		require.Equal(t, byNumber[e.Number], e.FocusID, "event %d is the one its appender was told", e.Number)
	}
	requireEventCount(t, s, "a", n)
}

func testEventSubscriptionsIndependent(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"), sub("c"))
	a1, b1, a2, b2, a3 := event("a", "e1", 1), event("b", "e1", 1), event("a", "e2", 1), event("b", "e2", 1), event("a", "e3", 1)
	b2.Topic = topicB
	require.Equal(t, []int64{1, 1, 2, 2}, appendEvents(t, s, a1, b1, a2, b2), "interleaved in one transaction")
	require.Equal(t, []int64{3}, appendEvents(t, s, a3))

	requireEvents(t, []store.Event{numbered(a1, 1), numbered(a2, 2), numbered(a3, 3)}, allEvents(t, s, "a"))
	requireEvents(t, []store.Event{numbered(b1, 1), numbered(b2, 2)}, allEvents(t, s, "b"))
	require.Empty(t, allEvents(t, s, "c"))
	requireEventCount(t, s, "a", 3)
	requireEventCount(t, s, "b", 2)
	requireEventCount(t, s, "c", 0)

	// Subscriptions that differ only in case are different subscriptions.
	putSubs(t, s, sub("A"))
	require.Equal(t, []int64{1}, appendEvents(t, s, event("A", "e4", 1)))
	requireEventCount(t, s, "a", 3)

	// Concurrent appenders to different subscriptions do not share numbers.
	const n = 6
	type result struct {
		sub    string
		number int64
		err    error
	}
	start := make(chan struct{})
	results := make(chan result, 2*n)
	for i := range 2 * n {
		go func() {
			<-start
			r := result{sub: []string{"b", "c"}[i%2]}
			r.err = s.InTx(ctx, func(tx store.Tx) error {
				var err error
				r.number, err = tx.AppendEvent(ctx, event(r.sub, fmt.Sprint("r", i), 1))
				return err
			})
			results <- r
		}()
	}
	close(start)
	got := map[string][]int64{}
	for range 2 * n {
		r := await(t, results, "racing appenders")
		require.NoError(t, r.err)
		got[r.sub] = append(got[r.sub], r.number)
	}
	slices.Sort(got["b"])
	slices.Sort(got["c"])
	require.Equal(t, span(3, 2+n), got["b"])
	require.Equal(t, span(1, n), got["c"])
	require.Equal(t, span(1, 2+n), eventNumbers(allEvents(t, s, "b")))
	require.Equal(t, span(1, n), eventNumbers(allEvents(t, s, "c")))
	require.Equal(t, span(1, 3), eventNumbers(allEvents(t, s, "a")))
}

func testEventsRange(t *testing.T, s store.Store) {
	putSubs(t, s, sub("a"), sub("b"))
	var all []store.Event
	for v := int64(1); v <= 10; v++ {
		e := event("a", "e1", v)
		all = append(all, numbered(e, v))
		appendEvents(t, s, e, event("b", "e1", v))
	}
	evs := func(numbers ...int64) []store.Event {
		var out []store.Event
		for _, n := range numbers {
			out = append(out, all[n-1])
		}
		return out
	}
	cases := []struct {
		name     string
		from, to int64
		limit    int
		want     []store.Event
	}{
		{"all", 1, 0, 0, evs(span(1, 10)...)},
		{"from 0 is from the start", 0, 0, 0, evs(span(1, 10)...)},
		{"from is inclusive", 4, 0, 0, evs(span(4, 10)...)},
		{"to is inclusive", 1, 3, 0, evs(1, 2, 3)},
		{"from and to", 3, 5, 0, evs(3, 4, 5)},
		{"one", 7, 7, 0, evs(7)},
		{"to past the end", 8, 99, 0, evs(8, 9, 10)},
		{"limit", 1, 0, 4, evs(1, 2, 3, 4)},
		{"limit 1", 6, 0, 1, evs(6)},
		{"limit with from and to", 2, 9, 3, evs(2, 3, 4)},
		{"to before limit", 2, 3, 5, evs(2, 3)},
		{"limit past the end", 9, 0, 5, evs(9, 10)},
		{"from past the end", 11, 0, 0, nil},
		{"from after to", 5, 4, 0, nil},
	}
	check := func(r store.EventReader, via string) {
		for _, tc := range cases {
			got, err := r.Events(t.Context(), "a", tc.from, tc.to, tc.limit)
			require.NoError(t, err, "%s %s", via, tc.name)
			requireEvents(t, tc.want, got, via, " ", tc.name)
		}
	}
	check(s, "Store")
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		check(tx, "Tx")
		// A range that spans committed events and the Tx's own appends.
		e11 := event("a", "e1", 11)
		n, err := tx.AppendEvent(t.Context(), e11)
		require.NoError(t, err)
		require.EqualValues(t, 11, n)
		got, err := tx.Events(t.Context(), "a", 9, 0, 0)
		require.NoError(t, err)
		requireEvents(t, append(evs(9, 10), numbered(e11, 11)), got, "Tx: committed then pending")
		got, err = tx.Events(t.Context(), "a", 10, 0, 1)
		require.NoError(t, err)
		requireEvents(t, evs(10), got, "Tx: limit across committed and pending")
		got, err = tx.Events(t.Context(), "a", 11, 11, 0)
		require.NoError(t, err)
		requireEvents(t, []store.Event{numbered(e11, 11)}, got, "Tx: only pending")
		return errors.New("roll back")
	})
	require.Error(t, err)
	check(s, "Store after rollback")

	// Paging by the last number seen walks every event once.
	var walked []store.Event
	from := int64(1)
	for range 10 {
		page, err := s.Events(t.Context(), "a", from, 0, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3)
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		from = page[len(page)-1].Number + 1
	}
	requireEvents(t, all, walked, "paged")
}

func testEventNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"))

	_, err := s.EventCount(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "EventCount of an absent subscription")
	_, err = s.EventCount(ctx, "A")
	require.ErrorIs(t, err, store.ErrNotFound, "EventCount: ids are case-sensitive")
	evs, err := s.Events(ctx, "nope", 1, 0, 0)
	require.NoError(t, err, "Events of an absent subscription is not an error")
	require.Empty(t, evs)

	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.AppendEvent(ctx, event("nope", "e1", 1))
		require.ErrorIs(t, err, store.ErrNotFound, "AppendEvent to an absent subscription")
		_, err = tx.EventCount(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.EventCount")
		evs, err := tx.Events(ctx, "nope", 1, 0, 0)
		require.NoError(t, err, "Tx.Events")
		require.Empty(t, evs)
		// ErrNotFound wrote nothing and left the transaction usable.
		n, err := tx.AppendEvent(ctx, event("a", "e1", 1))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		// A state put in this transaction takes events at once; one
		// deleted in it takes none.
		require.NoError(t, tx.PutSubscription(ctx, sub("new")))
		requireEventCount(t, tx, "new", 0, "Tx.EventCount of the Tx's own new state")
		n, err = tx.AppendEvent(ctx, event("new", "e1", 1))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.NoError(t, tx.DeleteSubscription(ctx, "a"))
		_, err = tx.AppendEvent(ctx, event("a", "e1", 2))
		require.ErrorIs(t, err, store.ErrNotFound, "AppendEvent to a state deleted in the Tx")
		_, err = tx.EventCount(ctx, "a")
		require.ErrorIs(t, err, store.ErrNotFound, "Tx.EventCount of a state deleted in the Tx")
		return errors.New("roll back")
	})
	require.Error(t, err)
	requireEventCount(t, s, "a", 0)
	requireSubAbsent(t, s, "new")
	_, err = s.EventCount(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "AppendEvent's ErrNotFound created nothing")
}

func testEventSubscriptionReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sub("a")
	putSubs(t, s, a)
	e1, e2, e3 := event("a", "e1", 1), event("a", "e1", 2), event("a", "e1", 3)
	appendEvents(t, s, e1, e2, e3)

	a.Status, a.Error, a.UpdatedAt = "error", "endpoint unreachable", at(9, 0)
	putSubs(t, s, a)
	requireSubStored(t, s, a, "the state was replaced")
	requireEventCount(t, s, "a", 3, "replacing the state keeps the counter")
	want := []store.Event{numbered(e1, 1), numbered(e2, 2), numbered(e3, 3)}
	requireEvents(t, want, allEvents(t, s, "a"), "replacing the state keeps the events")

	// Replace and append in one transaction, in either order.
	e4, e5 := event("a", "e2", 1), event("a", "e2", 2)
	err := s.InTx(ctx, func(tx store.Tx) error {
		a.Status = "active"
		if err := tx.PutSubscription(ctx, a); err != nil {
			return err
		}
		n, err := tx.AppendEvent(ctx, e4)
		require.NoError(t, err)
		require.EqualValues(t, 4, n)
		a.Status = "requested"
		if err := tx.PutSubscription(ctx, a); err != nil {
			return err
		}
		requireEventCount(t, tx, "a", 4)
		n, err = tx.AppendEvent(ctx, e5)
		require.NoError(t, err)
		require.EqualValues(t, 5, n)
		return nil
	})
	require.NoError(t, err)
	requireSubStored(t, s, a)
	requireEventCount(t, s, "a", 5)
	requireEvents(t, append(want, numbered(e4, 4), numbered(e5, 5)), allEvents(t, s, "a"))
}

func testEventSubscriptionDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"))
	e1, e2 := event("a", "e1", 1), event("a", "e1", 2)
	b1 := event("b", "e1", 1)
	appendEvents(t, s, e1, e2, b1)

	// A rolled-back delete keeps the events.
	err := s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.DeleteSubscription(ctx, "a"))
		require.Empty(t, allEvents(t, tx, "a"), "Tx.Events after the Tx's own delete")
		return errors.New("roll back")
	})
	require.Error(t, err)
	requireEventCount(t, s, "a", 2)
	requireEvents(t, []store.Event{numbered(e1, 1), numbered(e2, 2)}, allEvents(t, s, "a"))

	// A committed delete drops them, and only them.
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "a") })
	require.NoError(t, err)
	_, err = s.EventCount(ctx, "a")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, allEvents(t, s, "a"), "deleting the state deletes its events")
	requireEvents(t, []store.Event{numbered(b1, 1)}, allEvents(t, s, "b"), "other subscriptions keep theirs")
	requireEventCount(t, s, "b", 1)

	// A state put again starts afresh.
	putSubs(t, s, sub("a"))
	requireEventCount(t, s, "a", 0, "a re-created state starts at 0")
	require.Empty(t, allEvents(t, s, "a"))
	e3 := event("a", "e2", 1)
	require.Equal(t, []int64{1}, appendEvents(t, s, e3))
	requireEvents(t, []store.Event{numbered(e3, 1)}, allEvents(t, s, "a"))

	// Delete and re-create in one transaction: the old events are gone
	// within it and after it.
	e4 := event("b", "e3", 1)
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSubscription(ctx, "b"); err != nil {
			return err
		}
		if err := tx.PutSubscription(ctx, sub("b")); err != nil {
			return err
		}
		requireEventCount(t, tx, "b", 0, "Tx: re-created state")
		require.Empty(t, allEvents(t, tx, "b"), "Tx: re-created state")
		n, err := tx.AppendEvent(ctx, e4)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		requireEvents(t, []store.Event{numbered(e4, 1)}, allEvents(t, tx, "b"), "Tx: only the new event")
		return nil
	})
	require.NoError(t, err)
	requireEventCount(t, s, "b", 1)
	requireEvents(t, []store.Event{numbered(e4, 1)}, allEvents(t, s, "b"), "the old events did not come back")

	// Deleting a state that has appends pending in the same transaction.
	err = s.InTx(ctx, func(tx store.Tx) error {
		n, err := tx.AppendEvent(ctx, event("b", "e4", 1))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		return tx.DeleteSubscription(ctx, "b")
	})
	require.NoError(t, err)
	_, err = s.EventCount(ctx, "b")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, allEvents(t, s, "b"))
}

func testEventInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"))
	appendEvents(t, s, event("a", "e1", 1))
	for _, tc := range []struct {
		name  string
		tweak func(*store.Event)
	}{
		{"unknown method", func(e *store.Event) { e.Method = "PATCH" }},
		{"no method", func(e *store.Event) { e.Method = "" }},
		{"focus version 0", func(e *store.Event) { e.FocusVersion = 0 }},
		{"negative focus version", func(e *store.Event) { e.FocusVersion = -1 }},
	} {
		e := event("a", "bad", 1)
		tc.tweak(&e)
		err := s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.AppendEvent(ctx, e)
			return err
		})
		require.Error(t, err, tc.name)
		require.NotErrorIs(t, err, store.ErrConflict, "%s: an invalid event is not a conflict to retry", tc.name)
		require.NotErrorIs(t, err, store.ErrNotFound, tc.name)
		requireEventCount(t, s, "a", 1, tc.name)
	}
	require.Equal(t, []int64{2}, appendEvents(t, s, event("a", "e1", 2)), "invalid events used up no number")
}

// testAppendEventsBatch: AppendEvents numbers each Subscription's event as
// AppendEvent would and returns the numbers in slice order.
func testAppendEventsBatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"), sub("c"))
	appendEvents(t, s, event("b", "e0", 1))
	var nums []int64
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		var err error
		nums, err = tx.AppendEvents(ctx, []store.Event{event("c", "e1", 2), event("a", "e1", 2), event("b", "e1", 2)})
		return err
	}))
	require.Equal(t, []int64{1, 1, 2}, nums, "numbers in slice order, each from its own counter")
	requireEvents(t, []store.Event{numbered(event("b", "e0", 1), 1), numbered(event("b", "e1", 2), 2)}, allEvents(t, s, "b"))
	requireEvents(t, []store.Event{numbered(event("a", "e1", 2), 1)}, allEvents(t, s, "a"))

	// Twice the same Subscription in one batch: consecutive numbers.
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		var err error
		nums, err = tx.AppendEvents(ctx, []store.Event{event("a", "e2", 3), event("a", "e3", 4)})
		return err
	}))
	require.Equal(t, []int64{2, 3}, nums)

	err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.AppendEvents(ctx, []store.Event{event("a", "e4", 5), event("nobody", "e4", 5)})
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	requireEventCount(t, s, "a", 3, "the failed transaction appended nothing")
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		nums, err := tx.AppendEvents(ctx, nil)
		require.Empty(t, nums)
		return err
	}))
}

// testAppendEventsAtCommit: AppendEventsAtCommit numbers as AppendEvents
// does; the transaction's later reads see the events; an event of a
// Subscription without state is skipped, not an error.
func testAppendEventsAtCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"))
	appendEvents(t, s, event("b", "e0", 1))
	a1, b1, nobody := event("a", "e1", 2), event("b", "e1", 2), event("nobody", "e1", 2)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.AppendEventsAtCommit(ctx, []store.Event{a1, nobody, b1}); err != nil {
			return err
		}
		requireEvents(t, []store.Event{numbered(a1, 1)}, allEvents(t, tx, "a"), "read later in the transaction")
		return nil
	}))
	requireEvents(t, []store.Event{numbered(a1, 1)}, allEvents(t, s, "a"))
	requireEvents(t, []store.Event{numbered(event("b", "e0", 1), 1), numbered(b1, 2)}, allEvents(t, s, "b"))
	_, err := s.EventCount(ctx, "nobody")
	require.ErrorIs(t, err, store.ErrNotFound, "no counter made for a Subscription without state")

	// One event alone, and one Subscription twice: consecutive numbers,
	// appended when nothing follows but the commit.
	a2, a3, a4 := event("a", "e2", 3), event("a", "e3", 4), event("a", "e4", 5)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.AppendEventsAtCommit(ctx, []store.Event{a2}) }))
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.AppendEventsAtCommit(ctx, []store.Event{a3, a4}) }))
	requireEvents(t, []store.Event{numbered(a1, 1), numbered(a2, 2), numbered(a3, 3), numbered(a4, 4)}, allEvents(t, s, "a"))
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.AppendEventsAtCommit(ctx, nil) }))
}

// testAppendEventsAtCommitFails: an event AppendEventsAtCommit cannot store
// fails the transaction, whether its failure shows at once, at the next
// statement or at the commit, and nothing of the transaction stays: not
// the resource version written with it, not the other events.
func testAppendEventsAtCommitFails(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"))
	bad := event("b", "bad", 1)
	bad.FocusVersion = 0
	for _, next := range []string{"commit", "statement"} {
		v := ver("Patient", "at-commit-"+next, 1)
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, v); err != nil {
				return err
			}
			if err := tx.AppendEventsAtCommit(ctx, []store.Event{event("a", v.ID, 1), bad}); err != nil {
				return err
			}
			if next == "statement" {
				_, err := tx.Current(ctx, "Patient", v.ID)
				return err
			}
			return nil
		})
		require.Error(t, err, next)
		require.NotErrorIs(t, err, store.ErrNotFound, next)
		requireEventCount(t, s, "a", 0, next)
		requireEventCount(t, s, "b", 0, next)
		_, err = s.Current(ctx, "Patient", v.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: the write rolled back with its events", next)
	}
	appendEvents(t, s, event("a", "after", 1))
	requireEventCount(t, s, "a", 1, "the failures used up no number")
}

// testEventIncludesResolved: an include at version 0 is recorded at the
// head version the appending transaction sees (its own writes included),
// and left out when the resource does not exist or is deleted; a ref with
// a version is kept as it is, in order; alone, in a batch and at commit.
func testEventIncludesResolved(t *testing.T, s store.Store) {
	ctx := t.Context()
	putSubs(t, s, sub("a"), sub("b"), sub("c"))
	deleted := ver("Practitioner", "dr", 2)
	deleted.Deleted, deleted.Body = true, nil
	put(t, s, ver("Patient", "p1", 1), ver("Patient", "p1", 2), ver("Practitioner", "dr", 1), deleted)
	named := []store.VersionRef{{Type: "Patient", ID: "p1"}, {Type: "Practitioner", ID: "dr"},
		{Type: "Organization", ID: "none"}, {Type: "Location", ID: "l1"}, {Type: "Patient", ID: "p9", Version: 3}}
	want := []store.VersionRef{{Type: "Patient", ID: "p1", Version: 2}, {Type: "Location", ID: "l1", Version: 1},
		{Type: "Patient", ID: "p9", Version: 3}}
	a1, b1, c1 := event("a", "e1", 1), event("b", "e1", 1), event("c", "e1", 1)
	a1.Includes, b1.Includes, c1.Includes = named, named, []store.VersionRef{{Type: "Organization", ID: "none"}}
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, ver("Location", "l1", 1)); err != nil { // written in the same transaction
			return err
		}
		if _, err := tx.AppendEvent(ctx, a1); err != nil {
			return err
		}
		return tx.AppendEventsAtCommit(ctx, []store.Event{b1, c1})
	}))
	for _, id := range []string{"a", "b"} {
		got := allEvents(t, s, id)
		require.Len(t, got, 1, id)
		require.Equal(t, want, got[0].Includes, id)
	}
	got := allEvents(t, s, "c")
	require.Len(t, got, 1)
	require.NotNil(t, got[0].Includes, "none found is recorded as none")
	require.Empty(t, got[0].Includes)
}

// testAppendEventsConcurrentOverlap: writes firing for overlapping sets of
// Subscriptions, listed in different orders, neither deadlock nor skip.
func testAppendEventsConcurrentOverlap(t *testing.T, s store.Store) {
	const writers = 12
	ctx := t.Context()
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		putSubs(t, s, sub(id))
	}
	start := make(chan struct{})
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			<-start
			// Each writer lists the ids rotated: a different order each.
			var evs []store.Event
			for k := range ids {
				evs = append(evs, event(ids[(w+k)%len(ids)], fmt.Sprint("w", w), 1))
			}
			errs <- s.InTx(ctx, func(tx store.Tx) error {
				_, err := tx.AppendEvents(ctx, evs)
				return err
			})
		}()
	}
	close(start)
	for range writers {
		require.NoError(t, await(t, errs, "overlapping batches"))
	}
	for _, id := range ids {
		require.Equal(t, span(1, writers), eventNumbers(allEvents(t, s, id)), id)
	}
}

// testEventIncludes: an event's recorded include versions come back as
// written through Events and a delivery claim, appended alone or in a
// batch; nil (not recorded) stays nil and empty stays empty.
func testEventIncludes(t *testing.T, s store.Store) {
	putSubs(t, s, sub("a"), sub("b"))
	refs := []store.VersionRef{{Type: "Patient", ID: "p1", Version: 2}, {Type: "Practitioner", ID: "dr.x-1", Version: 1}}
	a1, a2, a3 := event("a", "e1", 1), event("a", "e1", 2), event("a", "e2", 1)
	a1.Includes, a2.Includes = refs, []store.VersionRef{}
	appendEvents(t, s, a1)
	appendEvents(t, s, a2)
	appendEvents(t, s, a3)
	b1 := event("b", "e1", 1)
	b1.Includes = refs[1:]
	a4 := event("a", "e3", 1)
	a4.Includes = refs[:1]
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		_, err := tx.AppendEvents(t.Context(), []store.Event{a4, b1})
		return err
	})
	require.NoError(t, err)

	want := []store.Event{numbered(a1, 1), numbered(a2, 2), numbered(a3, 3), numbered(a4, 4)}
	got := allEvents(t, s, "a")
	requireEvents(t, want, got)
	require.NotNil(t, got[1].Includes, "recorded as none is not unrecorded")
	require.Nil(t, got[2].Includes)
	requireEvents(t, []store.Event{numbered(b1, 1)}, allEvents(t, s, "b"))

	tasks, err := s.ClaimDue(t.Context(), at(9, 0), 10, shortLease, 10, 0)
	require.NoError(t, err)
	claimed := false
	for _, tk := range tasks {
		if tk.State.ID != "a" {
			continue
		}
		claimed = true
		require.Len(t, tk.Events, 4)
		for i := range tk.Events {
			tk.Events[i].Focus = nil
		}
		requireEvents(t, want, tk.Events, "claimed")
	}
	require.True(t, claimed, "a has events due")
}
