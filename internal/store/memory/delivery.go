package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.DeliveryQueue  = (*Store)(nil)
	_ store.DeliveryWriter = (*tx)(nil)
)

// schedule is the delivery schedule of one subscription (store.DeliveryQueue);
// it exists only beside a state. The zero value is "nothing due".
type schedule struct {
	dueAt            time.Time
	lease            string
	leaseUntil       time.Time
	handshakePending bool
	failures         int
	lastSentAt       time.Time
	errorSince       time.Time
}

// The queue methods take writeMu, as a transaction does: a transaction
// copies a schedule into its overlay and writes it back at commit, so a
// claim or release between the two would be lost.

func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) ([]store.DeliveryTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.dueByTurn(now, time.Now(), perOwner) // leases follow the store's clock (store.DeliveryQueue), due times now
	if len(due) > limit {
		due = due[:max(limit, 0)]
	}
	clock := time.Now()
	token := uuid.NewString()
	out := make([]store.DeliveryTask, 0, len(due))
	for _, id := range due {
		sc := s.db.sched[id]
		sc.lease, sc.leaseUntil = token, clock.Add(leaseFor).UTC()
		s.db.sched[id] = sc
		tk := store.DeliveryTask{
			State: cloneSub(s.db.subs[id]), Lease: sc.lease, LeaseUntil: now.Add(leaseFor).UTC(),
			LastEventNumber: s.db.lastEvent[id], DeliveredThrough: s.db.delivered[id],
			HandshakePending: sc.handshakePending, FailureCount: sc.failures,
			DueAt: sc.dueAt, LastSentAt: sc.lastSentAt, ErrorSince: sc.errorSince,
			ConfigGeneration: s.generation.Load(),
		}
		if eventsPerTask > 0 && tk.Backlog() && !tk.HandshakePending {
			n := eventsPerTask
			if tk.State.MaxCount > 0 {
				n = tk.State.MaxCount
			}
			tk.Events = selectEvents(s.db.events[id], nil, tk.DeliveredThrough+1, 0, n)
		}
		out = append(out, tk)
	}
	return out, nil
}

// dueByTurn lists the unleased due Subscriptions in the order a claim takes
// them: round-robin across every owner with due work, each owner's earliest
// due first, an owner's live leases counting as turns already taken, and
// none beyond perOwner turns when perOwner > 0 (as the PostgreSQL claim).
// Claims hold writeMu, so the count includes every earlier claim's leases.
func (s *Store) dueByTurn(now, clock time.Time, perOwner int) []string {
	type candidate struct {
		id    string
		owner string
		dueAt time.Time
		turn  int
	}
	var due []candidate
	leased := map[string]int{}
	for owner, ends := range s.db.goneLeases {
		ends = slices.DeleteFunc(ends, func(end time.Time) bool { return !end.After(clock) })
		if len(ends) == 0 {
			delete(s.db.goneLeases, owner)
			continue
		}
		s.db.goneLeases[owner] = ends
		leased[owner] += len(ends)
	}
	for id, sc := range s.db.sched {
		owner := s.db.subs[id].Owner
		if sc.leaseUntil.After(clock) {
			leased[owner]++
			continue
		}
		if sc.dueAt.IsZero() || sc.dueAt.After(now) {
			continue
		}
		due = append(due, candidate{id: id, owner: owner, dueAt: sc.dueAt})
	}
	slices.SortFunc(due, func(a, b candidate) int {
		return cmp.Or(a.dueAt.Compare(b.dueAt), cmp.Compare(a.id, b.id))
	})
	seen := map[string]int{}
	for i := range due {
		seen[due[i].owner]++
		due[i].turn = leased[due[i].owner] + seen[due[i].owner]
	}
	slices.SortStableFunc(due, func(a, b candidate) int { return cmp.Compare(a.turn, b.turn) })
	out := make([]string, 0, len(due))
	for _, c := range due {
		if perOwner > 0 && c.turn > perOwner {
			continue
		}
		out = append(out, c.id)
	}
	return out
}

// ClaimsWaitForWriters: ClaimDue waits for an open transaction to end
// rather than skipping what it touches.
func (s *Store) ClaimsWaitForWriters() bool { return true }

func (s *Store) ReleaseLease(ctx context.Context, subscriptionID, lease string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc, ok := s.db.sched[subscriptionID]; ok && sc.lease == lease {
		sc.lease, sc.leaseUntil = "", time.Time{}
		s.db.sched[subscriptionID] = sc
	}
	return nil
}

func (s *Store) DeliveryWake() <-chan struct{} { return s.wakes.Listen() }

func (s *Store) signalWake() { s.wakes.Signal() }

func (s *Store) DeliveryStats(ctx context.Context) (store.DeliveryStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := store.DeliveryStats{ByStatus: map[string]int{}}
	for id, sub := range s.db.subs {
		st.ByStatus[sub.Status]++
		if sub.Status == "off" || s.db.delivered[id] >= s.db.lastEvent[id] {
			continue
		}
		evs := selectEvents(s.db.events[id], nil, s.db.delivered[id]+1, 0, 1)
		if len(evs) == 1 && (st.OldestUndelivered.IsZero() || evs[0].Timestamp.Before(st.OldestUndelivered)) {
			st.OldestUndelivered = evs[0].Timestamp
		}
	}
	return st, nil
}

// sched is the schedule as the tx sees it.
func (t *tx) sched(id string) schedule {
	if sc, ok := t.pendingSched[id]; ok {
		return sc
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return t.s.db.sched[id]
}

// delivered is the acknowledgement cursor as the tx sees it.
func (t *tx) delivered(id string) int64 {
	t.s.mu.RLock()
	n := t.s.db.delivered[id]
	t.s.mu.RUnlock()
	return max(n, t.pendingDelivered[id])
}

// reschedule applies PutSubscription's rules (store.DeliveryQueue) to the
// schedule of a state being put.
func (t *tx) reschedule(s store.SubscriptionState, existed bool) {
	var sc schedule
	if existed {
		sc = t.sched(s.ID)
	}
	// A cancelled lease keeps its end: the send it covered may still be in
	// flight, and no one may claim the Subscription before it ends.
	switch {
	case s.Websocket() && s.Status != "off":
		sc = schedule{lastSentAt: sc.lastSentAt, leaseUntil: sc.leaseUntil} // the sockets deliver it
		t.woken = true
	case s.Status == "requested":
		sc = schedule{dueAt: s.UpdatedAt, handshakePending: true, lastSentAt: sc.lastSentAt, leaseUntil: sc.leaseUntil}
		t.woken = true
	case s.Status == "off":
		sc = schedule{lastSentAt: sc.lastSentAt, leaseUntil: sc.leaseUntil}
	}
	if s.Status != "error" {
		sc.errorSince = time.Time{}
	} else if sc.errorSince.IsZero() {
		sc.errorSince = s.UpdatedAt
	}
	t.pendingSched[s.ID] = sc
}

// eventAppended makes the subscription due at ts (store.DeliveryQueue).
func (t *tx) eventAppended(id string, ts time.Time) {
	t.woken = true
	if st, err := t.Subscription(context.Background(), id); err == nil && st.Websocket() {
		return // the sockets bound to it deliver it, not the queue
	}
	sc := t.sched(id)
	if sc.dueAt.IsZero() || sc.failures == 0 && sc.dueAt.After(ts) {
		sc.dueAt = ts
	}
	t.pendingSched[id] = sc
	t.woken = true
}

func (s *Store) FinishDelivery(ctx context.Context, r store.DeliveryResult) error {
	return s.InTx(ctx, func(tx store.Tx) error { return tx.FinishDelivery(ctx, r) })
}

func (t *tx) FinishDelivery(ctx context.Context, r store.DeliveryResult) error {
	if !t.subExists(r.SubscriptionID) {
		return store.ErrLeaseLost
	}
	sc := t.sched(r.SubscriptionID)
	if sc.lease == "" || sc.lease != r.Lease {
		return store.ErrLeaseLost
	}
	t.logAttempt(r)
	last := t.lastEvent(r.SubscriptionID)
	delivered := max(t.delivered(r.SubscriptionID), min(r.DeliveredThrough, last))
	t.pendingDelivered[r.SubscriptionID] = delivered
	now := r.Now.UTC()
	switch {
	case r.Sent:
		sc.failures, sc.lastSentAt = 0, now
	case r.Failed:
		sc.failures++
	}
	if r.Handshaken {
		sc.handshakePending = false
	}
	st, _ := t.Subscription(ctx, r.SubscriptionID)
	if r.Sent && st.Status != "off" && delivered < last {
		sc.dueAt = now
	} else {
		sc.dueAt = r.Next.UTC()
	}
	if r.KeepFor > 0 {
		sc.leaseUntil = time.Now().Add(r.KeepFor) // the store's clock, as in ClaimDue
	} else {
		sc.lease, sc.leaseUntil = "", time.Time{}
	}
	t.pendingSched[r.SubscriptionID] = sc
	return nil
}

// commitSchedules applies the tx's schedules and cursors; InTx calls it with
// s.mu held, after the states are applied. Both exist only beside a state.
func (t *tx) commitSchedules(db *data) {
	for id, p := range t.pendingSubs {
		if _, ok := db.subs[id]; p.deleted && !ok {
			delete(db.sched, id)
		}
	}
	for id, sc := range t.pendingSched {
		if _, ok := db.subs[id]; ok {
			db.sched[id] = sc
		}
	}
	for id, n := range t.pendingDelivered {
		if _, ok := db.subs[id]; ok && n > db.delivered[id] {
			db.delivered[id] = n
		}
	}
}
