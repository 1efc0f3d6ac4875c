package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var _ store.HandoffQueue = (*Store)(nil)

// The hand-off (store.HandoffQueue). A write that appends events at commit
// (AppendEventsAtCommit) while an engine takes hand-offs ends with, in the
// COMMIT's round trip:
//
//	the appends
//	handoffLockSQL   try the claim lock, and say in the transaction whether it was taken
//	handoffSQL       lease the idle appended Subscriptions, as a claim would, and read their tasks
//	COMMIT
//
// and, once COMMIT succeeded, the engine starts the tasks on the workers it
// reserved before the round trip (Reservation), and the workers are woken
// (Store.wakeDelivery) if an appended Subscription was not handed off. The
// hand-off's statements only when it reserved any.
//
// Why this never gives one Subscription two senders, nor sends out of
// order: the transaction holds the row lock of every Subscription it
// appended to (the append's UPDATE) until COMMIT, so no claim can lease one
// of them meanwhile (claims skip locked rows), and the hand-off leases only
// rows whose lease is free in a snapshot taken after the appends; a lease a
// claim took earlier is committed, so seen. The lease, once committed,
// keeps every claimer off, as a claimed lease does. The row is taken only
// when no event waited before this transaction's (delivered_through is the
// last number but one), so the task carries everything owed, in order.
//
// Why the owner cap holds across instances: claims with a cap count an
// owner's leases under the claim lock (claimLockSQL), and so does the
// hand-off, in a statement that starts after the lock was granted (so its
// snapshot sees every lease a claim committed before); it only tries the
// lock (a write never waits for claims) and hands nothing off without it.
// The lock is then held until COMMIT, so no claim or other hand-off counts
// the owner's leases before these are committed.

// handoffSetting is the transaction's setting that handoffLockSQL sets to
// true when it took the claim lock.
const handoffSetting = `herald.handoff`

// handoffLockSQL tries the claim lock, without waiting, for the rest of the
// transaction.
const handoffLockSQL = `SELECT set_config('` + handoffSetting + `', pg_try_advisory_xact_lock(` + claimLockKey + `)::text, true)`

// handoffSQL leases, of the Subscriptions $8, those that are idle and
// claimable (claimableSQL, at most $3, their owners below the cap $6 as in
// claimSQL, counting the ones taken here in due order) to $1 for $4 (the
// claim's leaseSetSQL), and returns their tasks as claimSQL does
// (claimTasksSQL: $5 events per task, $7 bytes). Idle: its only event owed
// is this transaction's, it has not failed since its last success, it owes
// no handshake, has an endpoint and is active. Nothing without the claim
// lock (handoffLockSQL).
var handoffSQL = `WITH idle AS (
		SELECT s.id, s.due_at, s.owner, row_number() OVER (PARTITION BY s.owner ORDER BY s.due_at, s.id) AS turn
		FROM subscriptions s
		WHERE current_setting('` + handoffSetting + `', true) = 'true' AND s.id = ANY($8::text[])
			AND s.delivered_through = s.last_event_number - 1 AND s.failure_count = 0
			AND NOT s.handshake_pending AND s.endpoint <> '' AND s.status = 'active'
			AND ` + claimableSQL("s.") + `
	), taken AS (
		SELECT i.id FROM idle i
		CROSS JOIN LATERAL (` + ownerLeasesSQL("i.owner") + `) l
		WHERE ` + belowCapSQL("l.leased + i.turn - 1") + `
		ORDER BY i.due_at, i.id
		LIMIT $3
	), claimed AS (
		UPDATE subscriptions s SET ` + leaseSetSQL + `
		FROM taken WHERE s.id = taken.id
		RETURNING ` + claimedColumns + `
	)
	` + claimTasksSQL

// handoffs is the part of Store that holds the hand-off's receiver.
type handoffs struct {
	handoffMu sync.Mutex
	receiver  *store.HandoffReceiver // nil: none; a pointer, so stop can tell whose it is
	claims    atomic.Int64           // ClaimDue calls, for tests
	probe     *handoffProbe          // tests only
}

// handoffProbe is a query a test runs in a handing-off transaction, after
// the hand-off and before COMMIT.
type handoffProbe struct {
	sql string
	got func(int64)
}

// HandOffTo makes r the receiver of hand-offs until stop is called.
func (s *Store) HandOffTo(r store.HandoffReceiver) (stop func()) {
	p := &r
	s.handoffMu.Lock()
	s.receiver = p
	s.handoffMu.Unlock()
	return func() {
		s.handoffMu.Lock()
		if s.receiver == p {
			s.receiver = nil
		}
		s.handoffMu.Unlock()
	}
}

// newTxHandoff is a transaction's hand-off; nil when no engine takes them.
func (s *Store) newTxHandoff() *txHandoff {
	s.handoffMu.Lock()
	defer s.handoffMu.Unlock()
	if s.receiver == nil {
		return nil
	}
	return &txHandoff{receiver: *s.receiver, probe: s.probe, store: s}
}

// txHandoff is what a transaction may hand off.
type txHandoff struct {
	receiver store.HandoffReceiver
	ids      []string // appended at commit, distinct
	seen     map[string]bool
	res      store.Reservation
	tasks    *taskCollector
	probe    *handoffProbe
	store    *Store
	lease    string // the hand-off's lease token, once its statements are sent
}

func (t *tx) handingOff() bool { return t.handoff != nil }

func (h *txHandoff) add(id string) {
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	if !h.seen[id] {
		h.seen[id] = true
		h.ids = append(h.ids, id)
	}
}

// prepare reserves workers and defers the hand-off's statements to the
// COMMIT (see above). Call it once, right before committing; then call
// done.
func (h *txHandoff) prepare(q *lazyTx) {
	if h == nil || len(h.ids) == 0 {
		return
	}
	if h.res = h.receiver.Reserve(len(h.ids)); h.res.Slots > 0 {
		lease := uuid.NewString()
		h.lease = lease
		h.tasks = newTaskCollector(h.res.Now)
		q.Defer(handoffLockSQL)
		q.DeferQuery(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := pgx.RowToStructByName[claimEventRow](rows)
				if err != nil {
					return err
				}
				if err := h.tasks.add(r); err != nil {
					return err
				}
			}
			return rows.Err()
		}, handoffSQL, lease, h.res.Now, h.res.Slots, h.res.LeaseFor, max(h.res.EventsPerTask, 0), h.res.PerOwner,
			int64(store.ClaimEventBytes), h.ids)
		if p := h.probe; p != nil {
			q.DeferQuery(func(rows pgx.Rows) error {
				n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
				p.got(n)
				return err
			}, p.sql)
		}
	}
}

// tookAll reports whether the committed hand-off leased every Subscription
// the transaction appended to, so that no worker needs waking for them.
func (h *txHandoff) tookAll() bool {
	return h != nil && h.tasks != nil && len(h.tasks.tasks) == len(h.ids)
}

// done gives the receiver the leased tasks if the transaction committed,
// else frees the workers it reserved.
func (h *txHandoff) done(committed bool) {
	if h == nil || h.res.Slots <= 0 || h.res.Start == nil {
		return
	}
	start := h.res.Start
	h.res.Start = nil
	if !committed || h.tasks == nil {
		start(nil)
		if !committed && h.lease != "" {
			h.releaseUnknown()
		}
		return
	}
	start(h.tasks.tasks)
}

// releaseLostSQL frees the leases a hand-off may have committed, by their
// token, and wakes the workers of every instance when it freed any.
const releaseLostSQL = `WITH released AS (
		UPDATE subscriptions SET lease_token = NULL, lease_until = NULL
		WHERE id = ANY($1::text[]) AND lease_token = $2 RETURNING id)
	SELECT pg_notify('` + wakeChannel + `', '') FROM (SELECT FROM released LIMIT 1) r`

// releaseUnknown undoes a hand-off whose COMMIT failed: when the answer was
// lost rather than the transaction rolled back, the event and the lease
// committed, and without this no instance would send it before the lease
// expired (the hand-off sent no wake-up). The token is this hand-off's
// alone, so the release is right whether or not the commit happened; when
// it cannot be done, the lease expires as a dead worker's does.
func (h *txHandoff) releaseUnknown() {
	ctx, cancel := context.WithTimeout(context.Background(), releaseLostTimeout)
	defer cancel()
	_, _ = h.store.deliveryPool().Exec(ctx, releaseLostSQL, h.ids, h.lease)
}

// releaseLostTimeout bounds releaseUnknown, which the failed write waits for.
const releaseLostTimeout = 5 * time.Second
