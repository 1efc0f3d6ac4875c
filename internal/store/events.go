package store

import (
	"context"
	"time"
)

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
}

// EventWriter appends events inside a write's transaction.
type EventWriter interface {
	// AppendEvent assigns e the Subscription's next event number (its
	// last_event_number plus one), stores it and advances the counter, all
	// in the transaction; e.Number is ignored. ErrNotFound when the
	// Subscription has no state. Concurrent transactions appending to the
	// same Subscription are serialised, so numbers never repeat or skip.
	AppendEvent(ctx context.Context, e Event) (int64, error)
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
