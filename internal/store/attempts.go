package store

import (
	"context"
	"time"
)

// The delivery attempt log: one entry per send to a subscriber (handshake,
// heartbeat, event-notification, on any channel), and per send refused
// because the owner may no longer have the Subscription ("revoked"). An
// attempt is recorded with the outcome it led to (DeliveryResult.Attempt),
// in the same statement or transaction, so logging costs no round trip; an
// attempt whose lease was lost is not logged (ErrLeaseLost: its outcome is
// the next holder's). The log never holds request headers, secrets or the
// notification body. Entries outlive a deleted Subscription until pruned.

// Attempt outcomes.
const (
	AttemptSuccess = "success" // the subscriber acknowledged (2xx)
	AttemptFailure = "failure" // see Class
)

// MaxAttemptBody is how much of a response body an Attempt keeps.
const MaxAttemptBody = 1024

// Attempt is one send to a subscriber, or one refused before sending.
type Attempt struct {
	// Seq orders a Subscription's attempts; the store assigns it (ascending
	// in recording order) and ignores the value given.
	Seq            int64
	SubscriptionID string // set by FinishDelivery from the DeliveryResult
	At             time.Time
	Instance       string // the Herald instance that sent it (HERALD_INSTANCE_ID)
	Channel        string // rest-hook, websocket, …
	Kind           string // handshake, heartbeat or event-notification
	// FirstEvent..LastEvent are the event numbers carried; 0 when none.
	FirstEvent, LastEvent int64
	Outcome               string // AttemptSuccess or AttemptFailure
	Class                 string // why it failed, a webhook.Class; "" on success
	// StatusCode is the HTTP status, 0 when no response came.
	StatusCode    int
	Latency       time.Duration
	ResponseBytes int64  // response body bytes read (Herald reads at most 64 KiB)
	ResponseBody  string // the first MaxAttemptBody bytes, valid UTF-8
}

// AttemptQuery selects attempts of one Subscription, newest first.
type AttemptQuery struct {
	SubscriptionID string
	// Outcome, when set, keeps attempts with that outcome; Class, when
	// set, those with that class.
	Outcome, Class string
	// BeforeSeq, when > 0, keeps attempts with Seq < BeforeSeq (paging).
	BeforeSeq int64
	// Limit caps the number returned; 0 means no cap.
	Limit int
}

// DeliveryOverview is a Subscription's delivery as operators see it.
type DeliveryOverview struct {
	State            SubscriptionState
	LastEventNumber  int64
	DeliveredThrough int64
	// OldestUndelivered is the timestamp of the oldest event waiting (zero:
	// none waits, or it was pruned).
	OldestUndelivered time.Time
	LastSentAt        time.Time // the last acknowledged send; zero: never
	FailureCount      int       // consecutive failures
	DueAt             time.Time // when work is next due; zero: nothing is
	// LastFailure is the newest failed attempt; nil when none is logged.
	LastFailure *Attempt
}

// AttemptLog reads and prunes the attempt log, and gives operators the
// queue's view of each Subscription. Call it on the Store.
type AttemptLog interface {
	// Attempts returns the attempts q selects, newest first. A Subscription
	// without attempts (or unknown) gives none, not ErrNotFound.
	Attempts(ctx context.Context, q AttemptQuery) ([]Attempt, error)
	// PruneAttempts deletes attempts older than before and, of each
	// Subscription, all but its newest keep (keep <= 0: no count bound),
	// and returns how many it deleted.
	PruneAttempts(ctx context.Context, before time.Time, keep int) (int64, error)
	// DeliveryOverviews returns the states f selects, ordered by id, after
	// afterID (paging; "" from the start), at most limit (0: no cap).
	DeliveryOverviews(ctx context.Context, f SubscriptionFilter, afterID string, limit int) ([]DeliveryOverview, error)
	// RetryNow makes a Subscription that is not off due at now and resets
	// its consecutive failures (and so its backoff). The cursor and what
	// is sent next stay as they are: only the due time moves. The change
	// is audited (AuditRetry). ErrNotFound when there is no such state;
	// ErrConflict when it is off.
	RetryNow(ctx context.Context, id string, now time.Time) error
}

// AuditWriter records an admin change inside a transaction, so the entry
// commits with the change. Seq and At are the store's; Actor comes from
// ctx (WithActor).
type AuditWriter interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
}

// RetryAudit is the audit entry of RetryNow: the schedule before and after.
func RetryAudit(id string, failures int, dueBefore, now time.Time) AuditEntry {
	type schedule struct {
		FailureCount int        `json:"failure_count"`
		DueAt        *time.Time `json:"due_at"`
	}
	before := schedule{FailureCount: failures}
	if !dueBefore.IsZero() {
		before.DueAt = &dueBefore
	}
	return AuditEntry{Action: AuditRetry, Target: "Subscription/" + id,
		Before: AuditJSON(before), After: AuditJSON(schedule{DueAt: &now})}
}
