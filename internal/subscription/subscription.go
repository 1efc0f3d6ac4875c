// Package subscription is the lifecycle of backport Subscriptions (the
// Subscriptions R5 Backport IG's profile of the R4 Subscription): parsing
// the JSON a client sent (including the primitive extensions on criteria,
// channel.type and channel.payload that typed models drop), compiling each
// version for the policy (package policy), writing it, rechecking it before
// every send, status changes, and $status/$events.
package subscription

import (
	"time"
)

// Subscription is the part of a backport Subscription Herald acts on.
type Subscription struct {
	ID       string
	Status   string // as sent; the server owns it after create
	Reason   string
	End      time.Time // zero: none given
	Topic    string    // criteria: the SubscriptionTopic canonical (url or url|version)
	Filters  []Filter
	Channel  string // rest-hook or websocket
	Endpoint string // empty for websocket
	Payload  string // MIME type, e.g. application/fhir+json
	Content  string // empty, id-only or full-resource
	Headers  []Header
	// HeartbeatPeriod, Timeout: zero when not given.
	HeartbeatPeriod time.Duration
	Timeout         time.Duration
	MaxCount        int // zero when not given
	// SigningSecret is write-only: it is never stored in the resource.
	SigningSecret string
	// NotificationToken: Herald's notification-access-token extension.
	NotificationToken bool
}

// Header is one channel.header line, "Name: value".
type Header struct {
	Name, Value string
}

// Filter is one backport-filter-criteria value.
type Filter struct {
	Raw          string
	ResourceType string // "" when the filter did not name one
	Params       []FilterParam
}

// FilterParam is one param[:modifier]=value of a filter.
type FilterParam struct {
	Name, Modifier, Value string
}

// Limits are the bounds Herald accepts for channel settings.
var Limits = struct {
	MinHeartbeat, MaxHeartbeat time.Duration
	MaxMaxCount                int
	MinSecretLen               int
	MaxHeaders                 int
}{
	MinHeartbeat: 10 * time.Second, MaxHeartbeat: 24 * time.Hour,
	MaxMaxCount:  100,
	MinSecretLen: 32,
	MaxHeaders:   20,
}
