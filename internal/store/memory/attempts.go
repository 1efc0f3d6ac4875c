package memory

import (
	"context"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.AttemptLog  = (*Store)(nil)
	_ store.AuditWriter = (*tx)(nil)
)

// attemptLog holds each Subscription's attempts, oldest first. It is
// guarded by Store.mu.
type attemptLog struct {
	bySub map[string][]store.Attempt
	seq   int64
}

// log appends committed attempts; InTx calls it with s.mu held.
func (l *attemptLog) log(as []store.Attempt) {
	if len(as) == 0 {
		return
	}
	if l.bySub == nil {
		l.bySub = make(map[string][]store.Attempt)
	}
	for _, a := range as {
		l.seq++
		a.Seq = l.seq
		l.bySub[a.SubscriptionID] = append(l.bySub[a.SubscriptionID], a)
	}
}

// logAttempt queues r's attempt for commit.
func (t *tx) logAttempt(r store.DeliveryResult) {
	if r.Attempt == nil {
		return
	}
	a := *r.Attempt
	a.SubscriptionID = r.SubscriptionID
	a.At = a.At.UTC().Truncate(time.Microsecond) // PostgreSQL's precision
	a.Latency = a.Latency.Truncate(time.Microsecond)
	t.pendingAttempts = append(t.pendingAttempts, a)
}

func (s *Store) Attempts(ctx context.Context, q store.AttemptQuery) ([]store.Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []store.Attempt
	all := s.attempts.bySub[q.SubscriptionID]
	for i := len(all) - 1; i >= 0 && (q.Limit <= 0 || len(out) < q.Limit); i-- {
		a := all[i]
		if (q.Outcome == "" || a.Outcome == q.Outcome) && (q.Class == "" || a.Class == q.Class) &&
			(q.BeforeSeq <= 0 || a.Seq < q.BeforeSeq) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Store) PruneAttempts(ctx context.Context, before time.Time, keep int) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	before = before.Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	var deleted int64
	for id, all := range s.attempts.bySub {
		from := 0
		for from < len(all) && all[from].At.Before(before) {
			from++ // oldest first, and At grows with Seq within an instance
		}
		if keep > 0 && len(all)-from > keep {
			from = len(all) - keep
		}
		if from == 0 {
			continue
		}
		deleted += int64(from)
		if from == len(all) {
			delete(s.attempts.bySub, id)
			continue
		}
		s.attempts.bySub[id] = append([]store.Attempt(nil), all[from:]...)
	}
	return deleted, nil
}

func (s *Store) DeliveryOverviews(ctx context.Context, f store.SubscriptionFilter, afterID string, limit int) ([]store.DeliveryOverview, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []store.DeliveryOverview
	for _, st := range filterSubs(s.db.subs, nil, f) { // ordered by id
		if st.ID <= afterID {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		id, sc := st.ID, s.db.sched[st.ID]
		o := store.DeliveryOverview{State: st, LastEventNumber: s.db.lastEvent[id], DeliveredThrough: s.db.delivered[id],
			LastSentAt: sc.lastSentAt, FailureCount: sc.failures, DueAt: sc.dueAt}
		if o.DeliveredThrough < o.LastEventNumber {
			if evs := selectEvents(s.db.events[id], nil, o.DeliveredThrough+1, o.DeliveredThrough+1, 1); len(evs) == 1 {
				o.OldestUndelivered = evs[0].Timestamp
			}
		}
		all := s.attempts.bySub[id]
		for i := len(all) - 1; i >= 0; i-- {
			if all[i].Outcome == store.AttemptFailure {
				a := all[i]
				o.LastFailure = &a
				break
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func (s *Store) RetryNow(ctx context.Context, id string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.db.subs[id]
	switch {
	case !ok:
		return store.ErrNotFound
	case st.Status == "off":
		return store.ErrConflict
	}
	sc := s.db.sched[id]
	e := store.RetryAudit(id, sc.failures, sc.dueAt, now)
	e.Actor = store.ActorOf(ctx)
	sc.dueAt, sc.failures = now.UTC(), 0
	s.db.sched[id] = sc
	s.admin.append([]store.AuditEntry{e})
	s.signalWake()
	return nil
}

func (t *tx) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	e.Actor = store.ActorOf(ctx)
	t.pendingAudit = append(t.pendingAudit, e)
	return nil
}
