package memory

import (
	"context"
	"sync"
	"time"
)

// bindingHolds is store.BindingHolds for one process.
type bindingHolds struct {
	mu    sync.Mutex
	holds map[string]bindingHold // by token id
}

type bindingHold struct {
	holder string
	until  time.Time
}

func (s *Store) HoldBinding(ctx context.Context, tokenID, holder string, holdFor time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := time.Now()
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds == nil {
		h.holds = map[string]bindingHold{}
	}
	if cur, ok := h.holds[tokenID]; ok && cur.holder != holder && cur.until.After(now) {
		return false, nil
	}
	for id, other := range h.holds {
		if other.until.Before(now.Add(-time.Minute)) {
			delete(h.holds, id)
		}
	}
	h.holds[tokenID] = bindingHold{holder: holder, until: now.Add(holdFor)}
	return true, nil
}

func (s *Store) ReleaseBinding(ctx context.Context, tokenID, holder string) error {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.holds[tokenID]; ok && cur.holder == holder {
		delete(h.holds, tokenID)
	}
	return ctx.Err()
}

func (s *Store) EventCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]int64, len(ids))
	for _, id := range ids {
		if _, ok := s.db.subs[id]; ok {
			out[id] = s.db.lastEvent[id]
		}
	}
	return out, ctx.Err()
}
