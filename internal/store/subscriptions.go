package store

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// SubscriptionState is the server's own record of a Subscription, kept
// beside its resource versions and written in the same transaction. It holds
// what later authorization and delivery need and what the resource must not
// show: the owner and its grants, and the encrypted secrets.
type SubscriptionState struct {
	ID    string
	Owner string // client id of the creator
	// Context is the creator's launch context, which with Owner owns the
	// Subscription: "system", "patient/<id>" or "user/<fhirUser or sub>".
	Context  string
	Scopes   string    // the creating token's scopes, space-separated, as granted
	Patient  string    // the creating token's patient claim, if any
	TokenExp time.Time // the creating token's exp

	Status   string // requested, active, error, off
	Error    string // why the status is error or off; empty otherwise
	Topic    string // canonical, as in criteria
	Filters  []string
	Endpoint string
	Content  string // empty, id-only, full-resource
	End      time.Time

	HeartbeatPeriod time.Duration
	Timeout         time.Duration
	MaxCount        int

	// PatientKey pins the Subscription to one patient: "Patient/<id>" when
	// its filters can only match resources that reference that patient (or,
	// for Patient resources, are that patient), "" when it is not pinned.
	// It is derived from Filters (subscription.Rules.Prepare) and lets the
	// publisher skip Subscriptions pinned to other patients without loading
	// them (SubscriptionFilter.ByPatient). "" is always safe.
	PatientKey string

	// SealedSecret and SealedHeaders are ciphertexts (internal/secrets);
	// the store never sees plaintext. SealedHeaders seals the JSON array of
	// "Name: value" lines.
	SealedSecret  string
	SealedHeaders string

	CreatedAt, UpdatedAt time.Time

	// ErrorCode is Error's code in fhir.SubscriptionErrorSystem (such as
	// no-response); empty when there is none.
	ErrorCode string
	// Payload is channel.payload as written: the notifications'
	// Content-Type ("" is application/fhir+json).
	Payload string
	// NotificationToken: each id-only event notification carries an access
	// token for its resources (internal/notifytoken).
	NotificationToken bool
}

// Websocket reports whether the Subscription uses the websocket channel:
// it has no endpoint (subscription parsing requires one for rest-hook and
// refuses one for websocket). Its notifications go to the sockets bound to
// it (internal/wschannel), so the delivery queue never schedules it: no
// handshake is owed and appended events make nothing due, though they still
// wake DeliveryWake.
func (s SubscriptionState) Websocket() bool { return s.Endpoint == "" }

// SubscriptionFilter selects subscription states; empty fields match all.
type SubscriptionFilter struct {
	Owner    string
	Context  string   // with Owner: the owner's launch context
	Status   []string // any of
	Topic    string
	Topics   []string // any of (with Topic, also that one)
	Endpoint string
	IDs      []string // any of

	// ByPatient, when set, keeps only the states that are not pinned to a
	// patient (PatientKey "") and those pinned to one of PatientKeys
	// ("Patient/<id>"). With ByPatient and no PatientKeys, only unpinned
	// states match.
	ByPatient   bool
	PatientKeys []string
}

// SubscriptionReader reads subscription states.
type SubscriptionReader interface {
	// Subscription returns one state; ErrNotFound when absent.
	Subscription(ctx context.Context, id string) (SubscriptionState, error)
	// Subscriptions returns the states matching f, ordered by id.
	Subscriptions(ctx context.Context, f SubscriptionFilter) ([]SubscriptionState, error)
	// CountSubscriptions counts the states Subscriptions(f) returns.
	CountSubscriptions(ctx context.Context, f SubscriptionFilter) (int, error)
	// SubscriptionOwner returns who id belongs to, also once its state is
	// deleted; ErrNotFound when no state with id was ever put.
	SubscriptionOwner(ctx context.Context, id string) (SubscriptionOwner, error)
}

// Redefines reports whether next changes what old is about or where it goes:
// its topic, filters or endpoint.
func Redefines(old, next SubscriptionState) bool {
	return old.Topic != next.Topic || old.Endpoint != next.Endpoint || !slices.Equal(old.Filters, next.Filters)
}

// SubscriptionOwner is who a Subscription id belongs to. PutSubscription
// records it and DeleteSubscription keeps it: a deleted Subscription's
// history carries its owner's data, so its id stays with that owner.
type SubscriptionOwner struct {
	Client, Context string // as SubscriptionState.Owner and .Context
}

// SubscriptionWriter changes subscription states inside a transaction.
type SubscriptionWriter interface {
	// PutSubscription inserts or replaces the state with s.ID. A
	// replacement that Redefines the Subscription acknowledges every event
	// appended so far: events queued under the old definition are never
	// delivered under the new one.
	PutSubscription(ctx context.Context, s SubscriptionState) error
	// DeleteSubscription removes the state; deleting an absent one is not an error.
	DeleteSubscription(ctx context.Context, id string) error
	// UnpinSubscriptions clears the PatientKey of every state whose Topic is
	// topicURL, bare or with any |version, and returns how many it changed.
	// A key is derived from the topic's resource types; when a topic's types
	// change, the keys computed from the old ones are no longer safe.
	UnpinSubscriptions(ctx context.Context, topicURL string) (int, error)
}

// AllowedEndpoint is one entry of the endpoint allow-list.
type AllowedEndpoint struct {
	ID                  string    `json:"id"`
	URLPrefix           string    `json:"url_prefix"` // normalised by internal/allowlist before storing
	AllowPrivateNetwork bool      `json:"allow_private_network"`
	Note                string    `json:"note"`
	CreatedAt           time.Time `json:"created_at"`
}

// Client is one entry of the client registry. Clients without an entry get
// the configured defaults.
type Client struct {
	ClientID     string    `json:"client_id"`
	Status       string    `json:"status"`        // active or suspended
	MaxPayload   string    `json:"max_payload"`   // empty, id-only or full-resource
	ScopeCeiling string    `json:"scope_ceiling"` // space-separated scopes; empty means no ceiling
	UpdatedAt    time.Time `json:"updated_at"`
}

// AdminReader reads the allow-list and the client registry. A Tx is one
// too, so a write that checks them uses its own connection and never waits
// for a second one from the pool.
type AdminReader interface {
	// Endpoints returns the allow-list ordered by URLPrefix then ID.
	Endpoints(ctx context.Context) ([]AllowedEndpoint, error)
	// Client returns one entry; ErrNotFound when absent.
	Client(ctx context.Context, clientID string) (Client, error)
}

// AdminStore holds the allow-list and the client registry.
type AdminStore interface {
	AdminReader
	// AddEndpoint stores e (ID set by the caller); ErrConflict when an
	// entry with the same URLPrefix exists.
	AddEndpoint(ctx context.Context, e AllowedEndpoint) error
	// RemoveEndpoint deletes by ID; ErrNotFound when absent.
	RemoveEndpoint(ctx context.Context, id string) error

	// Clients returns the registry ordered by ClientID.
	Clients(ctx context.Context) ([]Client, error)
	// PutClient inserts or replaces the entry; created reports an insert.
	PutClient(ctx context.Context, c Client) (created bool, err error)

	// AuditLog returns recorded admin changes, newest first: at most limit,
	// older than beforeSeq when it is above 0. AddEndpoint, RemoveEndpoint
	// and PutClient append their entry atomically with the change, naming
	// the actor of ctx (WithActor).
	AuditLog(ctx context.Context, beforeSeq int64, limit int) ([]AuditEntry, error)
}

// AuditEntry is one admin change, kept append-only. The allow-list and the
// registry hold no secrets, so Before and After are the whole entries.
type AuditEntry struct {
	Seq    int64     // 1, 2, 3, … in the order of the changes
	At     time.Time // when the change was made
	Actor  string    // the admin's client id; empty when not made through the admin API
	Action string    // AuditAddEndpoint, AuditRemoveEndpoint, AuditPutClient, AuditRetry, AuditReactivate, AuditPutTopic, AuditDeleteTopic, AuditPutSubscription or AuditDeleteSubscription
	Target string    // the endpoint's id, the client's id, "Subscription/<id>" or "SubscriptionTopic/<id>"
	Before []byte    // JSON of the entry before the change; nil when none
	After  []byte    // JSON of the entry after the change; nil when none
}

// Audit actions.
const (
	AuditAddEndpoint    = "endpoint.add"
	AuditRemoveEndpoint = "endpoint.remove"
	AuditPutClient      = "client.put"
	AuditRetry          = "subscription.retry"
	AuditReactivate     = "subscription.reactivate"
	AuditPutTopic       = "topic.put"
	AuditDeleteTopic    = "topic.delete"
	// An admin's change of another owner's Subscription through /fhir.
	AuditPutSubscription    = "subscription.put"
	AuditDeleteSubscription = "subscription.delete"
)

type actorKey struct{}

// WithActor names who makes the admin changes made with ctx.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorOf is the actor WithActor set; empty when none.
func ActorOf(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// AuditJSON is the Before or After of an entry.
func AuditJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("store: audit entry: " + err.Error()) // plain structs always marshal
	}
	return b
}

// View reads everything a request may need to see: resources, subscription
// states and their events. Both Store and Tx are Views.
type View interface {
	Reader
	SubscriptionReader
	EventReader
}
