// Package wschannel is the IG's websocket channel: $get-ws-binding-token
// mints a short-lived binding token for some of a client's websocket
// Subscriptions, the client opens the socket at the websocket-url and sends
// "bind-with-token <token>", and the instance holding the socket delivers
// the handshake, heartbeats and event-notifications of every Subscription
// bound to it, authorized before every message by the same rules as
// rest-hook (subscription.Rules.Recheck, subscription.LoadEvents).
//
// Delivery follows each Subscription's events from a per-binding cursor that
// starts at its last event number at bind, read on every commit wake-up
// (store.DeliveryWake, from any instance) and on a poll. Events committed
// while no socket was bound are not replayed: $events has them, and the
// handshake's events-since-subscription-start tells the client how many
// there are.
package wschannel

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// DefaultTokenTTL is how long a binding token is valid when Tokens.TTL is 0.
const DefaultTokenTTL = 5 * time.Minute

// tokenPrefix marks Herald's binding tokens. A JWT (three base64url parts
// starting "eyJ") can never carry it, so neither kind passes for the other.
const tokenPrefix = "hwsb1."

// tokenAD binds the sealed grant to its one purpose: no other sealed value
// of Herald's (a signing secret, a header) opens as a binding token.
var tokenAD = secrets.AssociatedData("herald", "ws-binding-token", "v1")

// ErrInvalidToken: not a binding token of this server (forged, damaged, a
// bearer token) or expired. Deliberately one error: the client learns
// nothing about which check failed.
var ErrInvalidToken = errors.New("invalid or expired binding token")

// Grant is what a binding token carries: who asked, for which
// Subscriptions, until when.
type Grant struct {
	ID            string   `json:"jti"` // random; one live socket per token (store.BindingHolds)
	Client        string   `json:"client"`
	Context       string   `json:"ctx"` // the owner's launch context (auth.Principal.Context)
	Subscriptions []string `json:"subs"`
	Expires       int64    `json:"exp"` // Unix seconds
}

// ExpiresAt is Expires as a time.
func (g Grant) ExpiresAt() time.Time { return time.Unix(g.Expires, 0).UTC() }

// Tokens mints and opens binding tokens. A token is the grant sealed with
// Herald's own key (AES-256-GCM, secrets.Keyring): it cannot be forged or
// altered without HERALD_SECRET_KEY, every instance sharing that key opens
// it, and nothing needs storing until it is bound. It is never a bearer
// token: the API refuses it in Authorization, and the socket refuses JWTs.
type Tokens struct {
	Keys *secrets.Keyring
	TTL  time.Duration // 0: DefaultTokenTTL
	Now  func() time.Time
}

func (t *Tokens) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

// Mint seals a grant for client in context over subs.
func (t *Tokens) Mint(client, context string, subs []string) (string, Grant, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Grant{}, err
	}
	ttl := t.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	g := Grant{ID: base64.RawURLEncoding.EncodeToString(id[:]), Client: client, Context: context,
		Subscriptions: subs, Expires: t.now().Add(ttl).Unix()}
	plain, err := json.Marshal(g)
	if err != nil {
		return "", Grant{}, err
	}
	sealed, err := t.Keys.Seal(plain, tokenAD)
	if err != nil {
		return "", Grant{}, err
	}
	return tokenPrefix + sealed, g, nil
}

// Open returns the grant of a valid, unexpired token; else ErrInvalidToken.
func (t *Tokens) Open(token string) (Grant, error) {
	sealed, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Grant{}, ErrInvalidToken // a bearer token, or anything else
	}
	plain, err := t.Keys.Open(sealed, tokenAD)
	if err != nil {
		return Grant{}, ErrInvalidToken
	}
	var g Grant
	if err := strictjson.Unmarshal(plain, &g); err != nil || g.ID == "" || len(g.Subscriptions) == 0 {
		return Grant{}, ErrInvalidToken
	}
	if !t.now().Before(g.ExpiresAt()) {
		return Grant{}, ErrInvalidToken
	}
	return g, nil
}
