package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

// finishBatchMax is the most outcomes one statement records.
const finishBatchMax = 64

// finisher records the delivery outcomes (FinishDelivery) of a Store with
// a delivery pool of its own: outcomes that arrive while a statement is in
// flight go together in the next one, as group commit does. Every worker
// used to send its own statement, so at high load the outcomes cost one
// statement, one transaction and one round trip each (fan-out of one write
// to 1,000 Subscriptions: 13,173 statements in twelve seconds). One statement
// at a time: an outcome waits at most for the one in flight.
//
// A statement takes only the rows it can lock at once (SKIP LOCKED): a row
// that a write transaction holds (its append locks the Subscriptions it
// numbers events for, until it commits) is left to its own statement, which
// its worker sends and waits for alone, so no outcome waits behind another
// one's lock.
type finisher struct {
	pool *timedPool
	in   chan *finishing
	// ctx ends when the finisher stops; the statement in flight runs to
	// its end (record), the outcomes not yet sent go alone.
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}

	// hold, when set (tests), is waited for once an outcome arrived and
	// before the others are taken, so a test can queue outcomes and then
	// let them go in one statement.
	hold atomic.Pointer[sync.Mutex]
	// statements counts the statements sent (tests).
	statements atomic.Int64
}

// finishing is one outcome waiting to be recorded.
type finishing struct {
	r   store.DeliveryResult
	out chan finishOutcome // buffered: the finisher never waits for a reader
}

type finishOutcome struct {
	err error
	// alone: the row was locked by another transaction; record it with a
	// statement of its own.
	alone bool
}

func newFinisher(pool *timedPool) *finisher {
	f := &finisher{pool: pool, in: make(chan *finishing, finishBatchMax), done: make(chan struct{})}
	f.ctx, f.stop = context.WithCancel(context.Background())
	go f.run()
	return f
}

// close stops the finisher; outcomes not yet recorded are left to their
// callers' own statements. Safe to call more than once.
func (f *finisher) close() {
	f.stop()
	<-f.done
}

// finish records r with the next statement; alone means its row was locked
// by another transaction, or the finisher stopped, and r is not recorded.
func (f *finisher) finish(ctx context.Context, r store.DeliveryResult) (alone bool, err error) {
	it := &finishing{r: r, out: make(chan finishOutcome, 1)}
	select {
	case f.in <- it:
	case <-f.ctx.Done():
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case o := <-it.out:
		return o.alone, o.err
	case <-f.done: // stopped before recording it
		select {
		case o := <-it.out:
			return o.alone, o.err
		default:
			return true, nil
		}
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (f *finisher) run() {
	defer close(f.done)
	var pending []*finishing // taken from in, not yet recorded
	for {
		if len(pending) == 0 {
			select {
			case it := <-f.in:
				pending = append(pending, it)
			case <-f.ctx.Done():
				return
			}
		}
		if h := f.hold.Load(); h != nil {
			h.Lock()
			h.Unlock() //nolint:staticcheck // an empty critical section: waits for the test
		}
	drain:
		for len(pending) < 4*finishBatchMax {
			select {
			case it := <-f.in:
				pending = append(pending, it)
			default:
				break drain
			}
		}
		var batch []*finishing
		batch, pending = nextBatch(pending)
		f.record(batch)
		if f.ctx.Err() != nil {
			for _, it := range pending {
				it.out <- finishOutcome{alone: true}
			}
			return
		}
	}
}

// nextBatch splits up to finishBatchMax outcomes, one per Subscription, off
// pending (in order); the rest wait for the next statement. A worker has at
// most one outcome in flight, so a Subscription appears twice only after a
// lease was lost and taken again.
func nextBatch(pending []*finishing) (batch, rest []*finishing) {
	seen := make(map[string]bool, len(pending))
	for _, it := range pending {
		if len(batch) < finishBatchMax && !seen[it.r.SubscriptionID] {
			seen[it.r.SubscriptionID] = true
			batch = append(batch, it)
			continue
		}
		rest = append(rest, it)
	}
	return batch, rest
}

// record sends one statement for batch and tells each caller its outcome.
// A statement once sent runs to its end, also when the finisher stops
// meanwhile: cancelling it would leave its outcomes unknown (the server may
// commit before the cancel request reaches it), and an outcome told to go
// alone after all would be recorded twice, or reported lost when it was not.
func (f *finisher) record(batch []*finishing) {
	f.statements.Add(1)
	outcomes, err := f.exec(context.WithoutCancel(f.ctx), batch)
	for i, it := range batch {
		switch {
		case err != nil:
			it.out <- finishOutcome{err: wrap("finish delivery of subscription "+it.r.SubscriptionID, err)}
		default:
			it.out <- outcomes[i]
		}
	}
}

// finishBatchSQL is finishSQL and finishLoggedSQL (the same finishSet) for many outcomes, one per
// Subscription ($1 holds distinct ids). locked takes the row locks in id
// order, the order appenders use, and skips rows another transaction holds
// (the caller records those alone). The attempts ($10…) are logged for the
// outcomes whose lease was still held, as finishLoggedSQL does. Each locked
// row comes back with whether its outcome applied (false: the lease was
// lost).
var finishBatchSQL = `WITH input AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[], $5::bool[], $6::bigint[], $7::bool[],
			$8::timestamptz[], $9::bigint[])
			AS i(id, lease, now, sent, handshaken, through, failed, next, keep_us)
	), locked AS (
		SELECT id FROM subscriptions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE SKIP LOCKED
	), finished AS (
		UPDATE subscriptions s SET ` + finishSet(`i.now`, `i.sent`, `i.handshaken`, `i.through`, `i.failed`, `i.next`, `i.keep_us`) + `
		FROM input i
		WHERE s.id = i.id AND s.lease_token = i.lease AND s.id IN (SELECT id FROM locked)
		RETURNING s.id
	), logged AS (
		INSERT INTO delivery_attempts (subscription_id, ` + attemptColumns + `)
		SELECT a.* FROM unnest($10::text[], $11::timestamptz[], $12::text[], $13::text[], $14::text[], $15::bigint[],
			$16::bigint[], $17::text[], $18::text[], $19::integer[], $20::bigint[], $21::bigint[], $22::text[])
			AS a(subscription_id, at, instance, channel, kind, first_event, last_event, outcome, class,
				status_code, latency_us, response_bytes, response_body)
		WHERE a.subscription_id IN (SELECT id FROM finished)
	)
	SELECT l.id, l.id IN (SELECT id FROM finished) FROM locked l`

// exec runs finishBatchSQL for batch; the outcomes are batch's, in order.
func (f *finisher) exec(ctx context.Context, batch []*finishing) ([]finishOutcome, error) {
	var c struct {
		ids, leases                  []string
		nows                         []time.Time
		sent, handshaken, failed     []bool
		through                      []int64
		next                         []*time.Time
		keepUS                       []*int64
		aIDs, aInstance, aChannel    []string
		aKind, aOutcome, aClass      []string
		aBody                        []string
		aAt                          []time.Time
		aFirst, aLast, aLatency, aRB []int64
		aStatus                      []int32
	}
	for _, it := range batch {
		r := it.r
		c.ids = append(c.ids, r.SubscriptionID)
		c.leases = append(c.leases, r.Lease)
		c.nows = append(c.nows, r.Now)
		c.sent = append(c.sent, r.Sent)
		c.handshaken = append(c.handshaken, r.Handshaken)
		c.failed = append(c.failed, r.Failed)
		c.through = append(c.through, r.DeliveredThrough)
		c.next = append(c.next, toNullTime(r.Next))
		c.keepUS = append(c.keepUS, keepMicros(r))
		if a := r.Attempt; a != nil {
			c.aIDs = append(c.aIDs, r.SubscriptionID)
			c.aAt = append(c.aAt, a.At)
			c.aInstance = append(c.aInstance, a.Instance)
			c.aChannel = append(c.aChannel, a.Channel)
			c.aKind = append(c.aKind, a.Kind)
			c.aFirst = append(c.aFirst, a.FirstEvent)
			c.aLast = append(c.aLast, a.LastEvent)
			c.aOutcome = append(c.aOutcome, a.Outcome)
			c.aClass = append(c.aClass, a.Class)
			c.aStatus = append(c.aStatus, int32(a.StatusCode))
			c.aLatency = append(c.aLatency, a.Latency.Microseconds())
			c.aRB = append(c.aRB, a.ResponseBytes)
			c.aBody = append(c.aBody, a.ResponseBody)
		}
	}
	rows, err := f.pool.Query(ctx, finishBatchSQL, c.ids, c.leases, c.nows, c.sent, c.handshaken, c.through, c.failed,
		c.next, c.keepUS, c.aIDs, c.aAt, c.aInstance, c.aChannel, c.aKind, c.aFirst, c.aLast, c.aOutcome, c.aClass,
		c.aStatus, c.aLatency, c.aRB, c.aBody)
	if err != nil {
		return nil, err
	}
	applied := make(map[string]bool, len(batch))
	var id string
	var ok bool
	if _, err := pgx.ForEachRow(rows, []any{&id, &ok}, func() error {
		applied[id] = ok
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]finishOutcome, len(batch))
	for i, it := range batch {
		switch ok, locked := applied[it.r.SubscriptionID]; {
		case !locked:
			out[i] = finishOutcome{alone: true}
		case !ok:
			out[i] = finishOutcome{err: store.ErrLeaseLost}
		}
	}
	return out, nil
}
