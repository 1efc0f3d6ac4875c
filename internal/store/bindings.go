package store

import (
	"context"
	"time"
)

// BindingHolds keeps one websocket binding token on at most one live socket
// across every instance sharing the store. The socket's instance holds the
// token's id for a short lease and renews it while the socket lives; a
// crashed instance's hold simply expires.
type BindingHolds interface {
	// HoldBinding takes or renews the hold on tokenID for holder until
	// now+holdFor, and reports whether it did: false when another holder's
	// hold has not expired. A shared store judges expiry by its own clock.
	HoldBinding(ctx context.Context, tokenID, holder string, holdFor time.Duration) (bool, error)
	// ReleaseBinding ends holder's hold on tokenID; a hold that is not
	// holder's (or none) is left alone and is not an error.
	ReleaseBinding(ctx context.Context, tokenID, holder string) error
}

// EventCounts reads the last assigned event number of many Subscriptions at
// once: a socket bound to a hundred of them learns which have new events in
// one round trip. Ids without a state are left out of the map.
type EventCounts interface {
	EventCounts(ctx context.Context, subscriptionIDs []string) (map[string]int64, error)
}
