package store

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost: a delivery worker's lease on a Subscription expired, was
// taken by another worker, or was cancelled by a change to the Subscription
// (a client's update, a delete). The worker's result is discarded; what it
// sent is sent again by the next holder (at least once).
var ErrLeaseLost = errors.New("store: delivery lease lost")

// The delivery queue. Each Subscription state carries its delivery schedule
// beside the acknowledgement cursor: when work is next due (DueAt; none when
// zero), whether a handshake is owed, consecutive failures, when a
// notification last went out and since when it has been in error. The store
// keeps the schedule honest against concurrent writers:
//
//   - PutSubscription with status requested owes a handshake due at the
//     state's UpdatedAt, resets the failures and cancels any lease (the
//     Subscription was created or changed: start again). Status off clears
//     the schedule and cancels any lease. Other statuses keep the schedule.
//     A cancelled lease cannot be finished any more, but it still keeps
//     other workers off until it ends: its send may still be in flight.
//     ErrorSince is set when the status becomes error and cleared when it
//     leaves error.
//   - AppendEvent makes the Subscription due at the event's Timestamp unless
//     it is already due earlier or is backing off after a failure.
//   - ClaimDue leases due Subscriptions to one worker; while the lease runs
//     no other worker can claim the Subscription, and writers never wait for
//     it (the lease is a value, not a lock held across the send).
//   - FinishDelivery records the outcome and either releases the lease or
//     extends it.
//
// Several processes may share one store: ClaimDue never hands one
// Subscription to two live leases, so events of one Subscription go out in
// order, and a worker that dies loses only its lease, which expires.

// DeliveryTask is a leased Subscription: its state and its schedule as they
// were when claimed.
type DeliveryTask struct {
	State SubscriptionState
	// Lease identifies this claim; FinishDelivery must present it.
	Lease      string
	LeaseUntil time.Time

	LastEventNumber  int64 // the newest event number assigned
	DeliveredThrough int64 // the acknowledgement cursor
	HandshakePending bool
	FailureCount     int
	DueAt            time.Time
	LastSentAt       time.Time // zero: never
	ErrorSince       time.Time // zero: not in error

	// ConfigGeneration is the configuration generation (ConfigWatch) as the
	// claim saw it: the allow-list and registry a send decides against must
	// be at least that new.
	ConfigGeneration int64

	// Events are the first events after the cursor, ascending, when the
	// claim asked for them (see ClaimDue); they may be fewer than the
	// backlog, or none, if the claim raced a write, or when their focus
	// bodies would exceed ClaimEventBytes: read the rest with Events.
	// An event's Focus may be nil: read it then (store.View.Version).
	Events []Event
}

// ClaimEventBytes bounds the focus bodies a claim brings with one task's
// Events (never fewer than its first event): a claim of many
// Subscriptions, each owed maxCount events of large resources, would
// otherwise hold all of them at once before any is sent (32 x 100 x 4 MiB).
// The notification byte budget's default (HERALD_MAX_EVENTS_BYTES).
const ClaimEventBytes = 8 << 20

// Backlog reports whether events wait for delivery.
func (t DeliveryTask) Backlog() bool { return t.DeliveredThrough < t.LastEventNumber }

// DeliveryResult is what a worker did with a leased Subscription.
type DeliveryResult struct {
	SubscriptionID string
	Lease          string
	Now            time.Time

	// Sent: a notification was acknowledged (2xx): failures reset and
	// LastSentAt becomes Now.
	Sent bool
	// Handshaken: the handshake was acknowledged; none is owed any more.
	Handshaken bool
	// DeliveredThrough moves the acknowledgement cursor forward (values at
	// or below the cursor leave it). It must not pass the last event number.
	DeliveredThrough int64
	// Failed: the attempt failed; failures count up by one.
	Failed bool

	// Next is when work is next due if nothing else is: the retry time
	// after a failure or a deferral, the next heartbeat, the end of the
	// lease, or zero for none. After a success (Sent), events still
	// waiting make the Subscription due at Now instead (the store checks this under the
	// same lock as AppendEvent, so an event appended meanwhile is never
	// left waiting).
	Next time.Time

	// KeepFor, when > 0, keeps the lease until Now+KeepFor (the worker
	// goes on with the same Subscription); otherwise the lease ends.
	KeepFor time.Duration

	// Attempt, when set, is logged with the outcome (AttemptLog), in the
	// same statement; its SubscriptionID is this result's.
	Attempt *Attempt
}

// DeliveryQueue is how delivery workers find work. Call it on the Store.
type DeliveryQueue interface {
	// DeliveryWriter on the Store records an outcome in a transaction of
	// its own (one statement), for the common case with no status change.
	DeliveryWriter
	// ClaimDue leases up to limit Subscriptions that are due at now (DueAt
	// <= now) and not leased (or whose lease expired), for leaseFor,
	// earliest due first. Subscriptions locked by an uncommitted write are
	// skipped, not waited for (the embedded store, which serialises
	// transactions, waits instead and says so with ClaimsWaitForWriters).
	// With eventsPerTask > 0, each task that has a backlog and owes no
	// handshake carries its next events (at most its MaxCount, else
	// eventsPerTask), read in the same round trip.
	// A shared store sets and judges leases by its own clock (PostgreSQL:
	// the database's), so instances with skewed clocks never both hold a
	// lease; DeliveryTask.LeaseUntil is given in the caller's clock (now).
	//
	// The claim shares the workers between owners (SubscriptionState.Owner,
	// the client): it takes due work round-robin across every owner with
	// due work, each owner's earliest due first, an owner's leased
	// Subscriptions counting as turns already taken, so one owner's
	// thousands of due Subscriptions, however much earlier due, never push
	// another owner's one back; and with perOwner > 0 it leaves an owner's
	// Subscriptions unclaimed while perOwner of them are leased (a lease
	// counts until it ends, also when the Subscription is no longer due),
	// across every instance sharing the store and however many claim at
	// once, so one owner's slow or hanging endpoints cannot take every
	// worker. On a shared store a claim's cost grows with the owners that
	// have scheduled work and their shares, not with how many
	// Subscriptions are due.
	ClaimDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) ([]DeliveryTask, error)
	// ReleaseLease ends a lease without recording anything (graceful
	// shutdown): the Subscription can be claimed again at once. A lease
	// that is no longer held is not an error.
	ReleaseLease(ctx context.Context, subscriptionID, lease string) error
	// DeliveryWake returns a channel that receives (coalesced, never
	// blocking the sender) when delivery work may have become due: after a
	// commit that appended events or owed a handshake, in this process or,
	// for a shared store, in any process. It is a hint; workers also poll.
	// Each call returns a new channel that gets every wake-up (Wakes), so
	// call it once per listener and keep it.
	DeliveryWake() <-chan struct{}
	// DeliveryStats summarises the queue for monitoring.
	DeliveryStats(ctx context.Context) (DeliveryStats, error)
}

// DeliveryWriter records outcomes inside a transaction, so a status change
// (a new Subscription version) commits with them.
type DeliveryWriter interface {
	// FinishDelivery applies r if r.Lease is still the Subscription's
	// lease; otherwise it changes nothing and returns ErrLeaseLost.
	FinishDelivery(ctx context.Context, r DeliveryResult) error
}

// DeliveryStats is a snapshot of the queue.
type DeliveryStats struct {
	ByStatus map[string]int // Subscriptions per status
	// OldestUndelivered is the timestamp of the oldest event not yet
	// acknowledged by a Subscription that is not off; zero when none.
	OldestUndelivered time.Time
}

// HandoffQueue is a DeliveryQueue that can lease a Subscription to a
// delivery engine in the very transaction that appends its event, and hand
// the engine the task after COMMIT, so that an idle Subscription's event
// goes out without a claim (ClaimDue) to find it. Only a shared store
// (PostgreSQL) offers it; the embedded store keeps to claims.
//
// The append takes such a lease only when ClaimDue could have claimed the
// Subscription at that moment and it was idle: no event waited before the
// appended one, no lease, no failure to back off from, no handshake owed,
// an endpoint, status active, due, and its owner below perOwner leases (the
// claim's rule); and only while no claim runs on any instance (it never
// waits for one). Otherwise the event waits for a claim, as always. A lease
// taken so is an ordinary lease: FinishDelivery ends it, and if its engine
// stops or dies before it does, it expires and any claim takes the
// Subscription again.
type HandoffQueue interface {
	DeliveryQueue
	// HandOffTo makes r the receiver of the tasks that appends in this
	// store's transactions lease (AppendEventsAtCommit), until stop is
	// called; a later HandOffTo replaces an earlier one.
	HandOffTo(r HandoffReceiver) (stop func())
}

// HandoffReceiver runs handed-off tasks: a delivery engine.
type HandoffReceiver interface {
	// Reserve holds up to n free workers for the tasks a committing write
	// may lease, and says how to lease them. A Reservation with no Slots
	// means none: the write leases nothing.
	Reserve(n int) Reservation
}

// Reservation is workers held for a write's hand-off.
type Reservation struct {
	Slots int       // workers held; at most this many tasks are leased
	Now   time.Time // the receiver's clock, as ClaimDue's now
	// LeaseFor, EventsPerTask and PerOwner are ClaimDue's arguments.
	LeaseFor                time.Duration
	EventsPerTask, PerOwner int
	// Start runs the tasks the committed write leased (at most Slots) on
	// the held workers and frees the rest; nil when nothing was leased or
	// the transaction did not commit. The store calls it exactly once.
	Start func(tasks []DeliveryTask)
}
