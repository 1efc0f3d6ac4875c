package memory

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.SubscriptionReader = (*Store)(nil)
	_ store.SubscriptionReader = (*tx)(nil)
	_ store.SubscriptionWriter = (*tx)(nil)
)

// pendingSub is a transaction's last write of one subscription state: a put,
// or a delete.
type pendingSub struct {
	state   store.SubscriptionState
	deleted bool
}

func (s *Store) Subscription(ctx context.Context, id string) (store.SubscriptionState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.db.subs[id]
	if !ok {
		return store.SubscriptionState{}, store.ErrNotFound
	}
	return cloneSub(st), nil
}

func (s *Store) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return filterSubs(s.db.subs, nil, f), nil
}

func (t *tx) Subscription(ctx context.Context, id string) (store.SubscriptionState, error) {
	if p, ok := t.pendingSubs[id]; ok {
		if p.deleted {
			return store.SubscriptionState{}, store.ErrNotFound
		}
		return cloneSub(p.state), nil
	}
	return t.s.Subscription(ctx, id)
}

func (t *tx) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return filterSubs(t.s.db.subs, t.pendingSubs, f), nil
}

func (s *Store) CountSubscriptions(ctx context.Context, f store.SubscriptionFilter) (int, error) {
	subs, err := s.Subscriptions(ctx, f)
	return len(subs), err
}

func (t *tx) CountSubscriptions(ctx context.Context, f store.SubscriptionFilter) (int, error) {
	subs, err := t.Subscriptions(ctx, f)
	return len(subs), err
}

func (s *Store) SubscriptionOwner(ctx context.Context, id string) (store.SubscriptionOwner, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.db.owners[id]
	if !ok {
		return store.SubscriptionOwner{}, store.ErrNotFound
	}
	return o, nil
}

func (t *tx) SubscriptionOwner(ctx context.Context, id string) (store.SubscriptionOwner, error) {
	if o, ok := t.pendingOwners[id]; ok {
		return o, nil
	}
	return t.s.SubscriptionOwner(ctx, id)
}

func (t *tx) PutSubscription(ctx context.Context, s store.SubscriptionState) error {
	s = cloneSub(s)
	s.TokenExp = s.TokenExp.UTC()
	s.End = s.End.UTC()
	s.CreatedAt = s.CreatedAt.UTC()
	s.UpdatedAt = s.UpdatedAt.UTC()
	// Durations are kept to the millisecond, as in the Postgres store.
	s.HeartbeatPeriod = s.HeartbeatPeriod.Truncate(time.Millisecond)
	s.Timeout = s.Timeout.Truncate(time.Millisecond)
	if err := checkSub(s); err != nil {
		return fmt.Errorf("memory: put subscription %s: %w", s.ID, err)
	}
	if old, err := t.Subscription(ctx, s.ID); err == nil && store.Redefines(old, s) {
		t.pendingDelivered[s.ID] = t.lastEvent(s.ID)
	}
	t.reschedule(s, t.subExists(s.ID))
	t.pendingSubs[s.ID] = pendingSub{state: s}
	t.pendingOwners[s.ID] = store.SubscriptionOwner{Client: s.Owner, Context: s.Context}
	return nil
}

// DeleteSubscription drops the state's events and counter with it, as the
// Postgres store's ON DELETE CASCADE does; a state put again starts from 0.
// PutSubscription leaves both alone, so replacing a state keeps them.
func (t *tx) DeleteSubscription(ctx context.Context, id string) error {
	t.pendingSubs[id] = pendingSub{deleted: true}
	t.pendingEvents[id] = &pendingEvents{dropped: true}
	return nil
}

func (t *tx) UnpinSubscriptions(ctx context.Context, topicURL string) (int, error) {
	t.s.mu.RLock()
	all := filterSubs(t.s.db.subs, t.pendingSubs, store.SubscriptionFilter{})
	t.s.mu.RUnlock()
	n := 0
	for _, s := range all {
		if s.PatientKey == "" || (s.Topic != topicURL && !strings.HasPrefix(s.Topic, topicURL+"|")) {
			continue
		}
		s.PatientKey = ""
		t.pendingSubs[s.ID] = pendingSub{state: s}
		n++
	}
	return n, nil
}

// subExists reports whether the tx sees a state with id.
func (t *tx) subExists(id string) bool {
	if p, ok := t.pendingSubs[id]; ok {
		return !p.deleted
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	_, ok := t.s.db.subs[id]
	return ok
}

// checkSub enforces what the Postgres schema's CHECK constraints do, so that
// code developed against the memory store does not fail only in production.
func checkSub(s store.SubscriptionState) error {
	switch {
	case !slices.Contains([]string{"requested", "active", "error", "off"}, s.Status):
		return fmt.Errorf("invalid status %q", s.Status)
	case !slices.Contains([]string{"empty", "id-only", "full-resource"}, s.Content):
		return fmt.Errorf("invalid content %q", s.Content)
	case s.HeartbeatPeriod < 0 || s.Timeout < 0:
		return fmt.Errorf("negative duration")
	case s.MaxCount < 0 || s.MaxCount > math.MaxInt32:
		return fmt.Errorf("max count %d out of range", s.MaxCount)
	}
	return nil
}

// cloneSub copies s so that neither the caller nor the store sees the
// other's Filters; an empty Filters becomes nil.
func cloneSub(s store.SubscriptionState) store.SubscriptionState {
	if len(s.Filters) == 0 {
		s.Filters = nil
	} else {
		s.Filters = slices.Clone(s.Filters)
	}
	return s
}

// filterSubs returns copies of the committed states, overlaid with pending
// writes, that match f, ordered by id. A scan is fast enough for the
// embedded store.
func filterSubs(committed map[string]store.SubscriptionState, pending map[string]pendingSub, f store.SubscriptionFilter) []store.SubscriptionState {
	all := maps.Clone(committed)
	for id, p := range pending {
		if p.deleted {
			delete(all, id)
		} else {
			all[id] = p.state
		}
	}
	var out []store.SubscriptionState
	for _, s := range all {
		if subMatches(s, f) {
			out = append(out, cloneSub(s))
		}
	}
	slices.SortFunc(out, func(a, b store.SubscriptionState) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func subMatches(s store.SubscriptionState, f store.SubscriptionFilter) bool {
	return (f.Owner == "" || s.Owner == f.Owner) &&
		(f.Context == "" || s.Context == f.Context) &&
		(len(f.Status) == 0 || slices.Contains(f.Status, s.Status)) &&
		(f.Topic == "" || s.Topic == f.Topic) &&
		(len(f.Topics) == 0 || slices.Contains(f.Topics, s.Topic)) &&
		(f.Endpoint == "" || s.Endpoint == f.Endpoint) &&
		(len(f.IDs) == 0 || slices.Contains(f.IDs, s.ID)) &&
		(!f.ByPatient || s.PatientKey == "" || slices.Contains(f.PatientKeys, s.PatientKey))
}
