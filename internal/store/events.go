package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrCursorRange: Acknowledge was asked to move a delivery cursor backwards
// or past the Subscription's last assigned event number.
var ErrCursorRange = errors.New("store: delivery cursor out of range")

// Event is one numbered notification event of one Subscription: the write
// that made a topic fire for it. Numbers start at 1 per Subscription and
// have no gaps; they are assigned in the transaction of the write.
type Event struct {
	SubscriptionID string
	Number         int64
	Timestamp      time.Time
	Topic          string // the topic canonical that fired
	FocusType      string
	FocusID        string
	FocusVersion   int64  // the version of the focus that fired
	Method         Method // the interaction: POST, PUT or DELETE
	// Includes are the versions of the topic's notificationShape includes
	// of the focus when the event was written, so that $events and a late
	// delivery show what the event saw; nil: not recorded (events written
	// before they were, which show the current versions), empty: none.
	// Appending records a ref with Version 0 at the version current in
	// the appending transaction, and leaves it out when the resource does
	// not exist or is deleted: the publisher names the targets and the
	// store resolves them with the append, without a read of its own.
	Includes []VersionRef

	// Focus is the version a notification shows (for a delete, the one
	// before it) when the store read it with the event (a delivery claim
	// does); nil: read it. Never stored.
	Focus *Version
}

// VersionRef names one version of a resource.
type VersionRef struct {
	Type, ID string
	Version  int64
}

// String is "Type/id/_history/N".
func (r VersionRef) String() string {
	return r.Type + "/" + r.ID + "/_history/" + strconv.FormatInt(r.Version, 10)
}

// ParseVersionRef reads String's form back.
func ParseVersionRef(s string) (VersionRef, bool) {
	typ, rest, ok1 := strings.Cut(s, "/")
	id, n, ok2 := strings.Cut(rest, "/_history/")
	v, err := strconv.ParseInt(n, 10, 64)
	if !ok1 || !ok2 || err != nil || typ == "" || id == "" {
		return VersionRef{}, false
	}
	return VersionRef{Type: typ, ID: id, Version: v}, true
}

// EventWriter appends events inside a write's transaction.
type EventWriter interface {
	// AppendEvent assigns e the Subscription's next event number (its
	// last_event_number plus one), stores it and advances the counter, all
	// in the transaction; e.Number is ignored. ErrNotFound when the
	// Subscription has no state. Concurrent transactions appending to the
	// same Subscription are serialised, so numbers never repeat or skip.
	AppendEvent(ctx context.Context, e Event) (int64, error)
	// AppendEvents appends several events as AppendEvent would, one after
	// the other in slice order, and returns their numbers in that order. It
	// exists for the cost of fan-out: one write that fires for a thousand
	// Subscriptions is one round trip, not a thousand. ErrNotFound when any
	// Subscription has no state; the caller must then fail its transaction
	// (which of the others were appended is unspecified).
	AppendEvents(ctx context.Context, evs []Event) ([]int64, error)
	// AppendEventsAtCommit appends evs as AppendEvents does, for a caller
	// that needs no numbers: the store may send them with the
	// transaction's next statement or with its commit (a round trip fewer
	// per write), and a failure of theirs is then reported there and fails
	// the transaction; the events commit with it or not at all. An event
	// whose Subscription no longer has state (a concurrent transaction
	// deleted it since this one read it) is not appended.
	AppendEventsAtCommit(ctx context.Context, evs []Event) error
}

// EventReader reads stored events.
type EventReader interface {
	// Events returns the Subscription's events with from <= Number <= to
	// (to 0: no upper bound), ascending, at most limit (0: no limit).
	Events(ctx context.Context, subscriptionID string, from, to int64, limit int) ([]Event, error)
	// EventCount is the Subscription's last assigned event number (0 when
	// none; ErrNotFound when the Subscription has no state).
	EventCount(ctx context.Context, subscriptionID string) (int64, error)
}

// DeliveryCursor is the acknowledgement cursor of each Subscription: the
// newest event number its subscriber has acknowledged (delivered_through).
// It starts at 0, survives PutSubscription and goes with DeleteSubscription.
// Call these on the Store, not from inside an InTx fn.
type DeliveryCursor interface {
	// Acknowledge moves the cursor to through. through must lie between
	// the current cursor and EventCount, both inclusive (acknowledging the
	// current position again is a no-op); otherwise nothing changes and
	// the error matches ErrCursorRange. ErrNotFound when the Subscription
	// has no state.
	Acknowledge(ctx context.Context, subscriptionID string, through int64) error
	// Acknowledged returns the cursor (0 when nothing was acknowledged).
	// ErrNotFound when the Subscription has no state.
	Acknowledged(ctx context.Context, subscriptionID string) (int64, error)
}

// EventPruner removes old, acknowledged events (retention).
type EventPruner interface {
	// PruneEvents deletes events with Timestamp < before and Number <= the
	// delivery cursor of their Subscription, or of a Subscription that is
	// off (it sends nothing, so its backlog would otherwise grow forever):
	// an event a live subscriber has not acknowledged is never deleted,
	// whatever its age. It deletes at
	// most limit events (<= 0: no limit), in no particular order, and
	// returns how many it deleted. Counters are untouched: EventCount stays
	// the last assigned number, and numbering continues from it. Safe to
	// run concurrently with writers and with other pruners (which may make
	// it delete fewer than limit while deletable events remain).
	PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error)
}
