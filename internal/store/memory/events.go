package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.EventReader = (*Store)(nil)
	_ store.EventReader = (*tx)(nil)
	_ store.EventWriter = (*tx)(nil)
)

// pendingEvents is what a transaction did to one subscription's events.
// Write transactions are serialised, so numbering from the committed counter
// is safe, and a rolled-back transaction, whose overlay is discarded, never
// advances the counter.
type pendingEvents struct {
	// dropped: the state was deleted in this tx, so the committed events
	// and counter are gone (a state put again afterwards starts from 0).
	dropped bool
	last    int64         // the counter as this tx sees it
	added   []store.Event // appended in this tx, ascending
}

func (s *Store) Events(ctx context.Context, subscriptionID string, from, to int64, limit int) ([]store.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return selectEvents(s.db.events[subscriptionID], nil, from, to, limit), nil
}

func (s *Store) EventCount(ctx context.Context, subscriptionID string) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.db.subs[subscriptionID]; !ok {
		return 0, store.ErrNotFound
	}
	return s.db.lastEvent[subscriptionID], nil
}

func (t *tx) Events(ctx context.Context, subscriptionID string, from, to int64, limit int) ([]store.Event, error) {
	p := t.pendingEvents[subscriptionID]
	if p == nil {
		return t.s.Events(ctx, subscriptionID, from, to, limit)
	}
	if p.dropped {
		return selectEvents(nil, p.added, from, to, limit), nil
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return selectEvents(t.s.db.events[subscriptionID], p.added, from, to, limit), nil
}

func (t *tx) EventCount(ctx context.Context, subscriptionID string) (int64, error) {
	if !t.subExists(subscriptionID) {
		return 0, store.ErrNotFound
	}
	return t.lastEvent(subscriptionID), nil
}

// lastEvent is the counter as the tx sees it.
func (t *tx) lastEvent(id string) int64 {
	if p := t.pendingEvents[id]; p != nil {
		return p.last
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return t.s.db.lastEvent[id]
}

func (t *tx) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	if !t.subExists(e.SubscriptionID) {
		return 0, store.ErrNotFound
	}
	if err := checkEvent(e); err != nil {
		return 0, fmt.Errorf("memory: append event to subscription %s: %w", e.SubscriptionID, err)
	}
	e.Includes = t.resolveIncludes(ctx, e.Includes)
	p := t.pendingEvents[e.SubscriptionID]
	if p == nil {
		p = &pendingEvents{last: t.lastEvent(e.SubscriptionID)}
		t.pendingEvents[e.SubscriptionID] = p
	}
	p.last++
	e.Number = p.last
	// Kept to the microsecond, as a timestamptz is.
	e.Timestamp = e.Timestamp.Truncate(time.Microsecond).UTC()
	p.added = append(p.added, e)
	t.eventAppended(e.SubscriptionID, e.Timestamp)
	return e.Number, nil
}

// AppendEvents appends one by one: transactions are serialised here, so a
// batch saves nothing, and a failure fails the caller's transaction, whose
// overlay is then discarded.
func (t *tx) AppendEvents(ctx context.Context, evs []store.Event) ([]int64, error) {
	nums := make([]int64, len(evs))
	for i, e := range evs {
		n, err := t.AppendEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		nums[i] = n
	}
	return nums, nil
}

// AppendEventsAtCommit appends at once: there is no round trip to save.
// An event of a Subscription without state is skipped.
func (t *tx) AppendEventsAtCommit(ctx context.Context, evs []store.Event) error {
	for _, e := range evs {
		if !t.subExists(e.SubscriptionID) {
			continue
		}
		if _, err := t.AppendEvent(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// resolveIncludes records each ref at version 0 at the head version the
// transaction sees, leaving out those without one or deleted
// (store.Event.Includes); nil stays nil.
func (t *tx) resolveIncludes(ctx context.Context, refs []store.VersionRef) []store.VersionRef {
	if refs == nil {
		return nil
	}
	out := make([]store.VersionRef, 0, len(refs))
	for _, r := range refs {
		if r.Version == 0 {
			cur, err := t.Current(ctx, r.Type, r.ID)
			if err != nil || cur.Deleted {
				continue
			}
			r.Version = cur.VersionID
		}
		out = append(out, r)
	}
	return out
}

// checkEvent enforces what the Postgres schema's CHECK constraints do.
func checkEvent(e store.Event) error {
	switch {
	case e.FocusVersion < 1:
		return fmt.Errorf("focus version %d is not positive", e.FocusVersion)
	case !slices.Contains([]store.Method{store.MethodCreate, store.MethodUpdate, store.MethodDelete}, e.Method):
		return fmt.Errorf("invalid method %q", e.Method)
	}
	return nil
}

// commitEvents applies the tx's events to db; InTx calls it with s.mu held,
// after the states are applied. Events and counters exist only beside a
// state.
func (t *tx) commitEvents(db *data) {
	for id, p := range t.pendingEvents {
		if p.dropped {
			delete(db.events, id)
			delete(db.lastEvent, id)
			delete(db.delivered, id)
		}
		if _, ok := db.subs[id]; !ok {
			continue
		}
		if p.last > 0 {
			db.lastEvent[id] = p.last
		}
		if len(p.added) > 0 {
			db.events[id] = append(db.events[id], p.added...)
		}
	}
}

// selectEvents returns a copy of the events of committed followed by added
// (both ascending) with from <= Number <= to (to <= 0: no bound), at most
// limit (<= 0: no limit).
func selectEvents(committed, added []store.Event, from, to int64, limit int) []store.Event {
	var out []store.Event
	for _, evs := range [][]store.Event{committed, added} {
		i, _ := slices.BinarySearchFunc(evs, from, func(e store.Event, n int64) int { return cmp.Compare(e.Number, n) })
		for _, e := range evs[i:] {
			if (to > 0 && e.Number > to) || (limit > 0 && len(out) == limit) {
				return out
			}
			out = append(out, e)
		}
	}
	return out
}
