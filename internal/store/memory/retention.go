package memory

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.DeliveryCursor = (*Store)(nil)
	_ store.EventPruner    = (*Store)(nil)
)

// The cursor and pruning work on committed data under s.mu alone, not
// writeMu: an open transaction never reads the cursor, and pruning only
// removes committed events (never the counter), which is what a concurrent
// committed delete would look like to it. Taking only s.mu also means a call
// from inside an InTx fn cannot deadlock.

func (s *Store) Acknowledge(ctx context.Context, subscriptionID string, through int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.db.subs[subscriptionID]; !ok {
		return store.ErrNotFound
	}
	cur, last := s.db.delivered[subscriptionID], s.db.lastEvent[subscriptionID]
	if through < cur || through > last {
		return fmt.Errorf("memory: acknowledge subscription %s through %d (cursor %d, last event %d): %w",
			subscriptionID, through, cur, last, store.ErrCursorRange)
	}
	if through > 0 {
		s.db.delivered[subscriptionID] = through
	}
	return nil
}

func (s *Store) Acknowledged(ctx context.Context, subscriptionID string) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.db.subs[subscriptionID]; !ok {
		return 0, store.ErrNotFound
	}
	return s.db.delivered[subscriptionID], nil
}

func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Timestamps are kept to the microsecond, and Postgres compares with
	// before truncated likewise.
	before = before.Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	var deleted int64
	for id, evs := range s.db.events {
		through := s.db.delivered[id]
		if sub, ok := s.db.subs[id]; ok && sub.Status == "off" {
			through = math.MaxInt64 // an off Subscription's backlog goes by age alone
		}
		if through == 0 {
			continue
		}
		// A new slice, so that nothing that copied the old one sees it change.
		kept := make([]store.Event, 0, len(evs))
		for _, e := range evs {
			if e.Number <= through && e.Timestamp.Before(before) && (limit <= 0 || deleted < int64(limit)) {
				deleted++
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) < len(evs) {
			s.db.events[id] = kept
		}
		if limit > 0 && deleted >= int64(limit) {
			break
		}
	}
	return deleted, nil
}
