// Package notifytoken mints and verifies notification access tokens: short
// JWTs that Herald puts in an id-only notification so that its receiver can
// read exactly the resources of that notification (its focus and included
// resources) from Herald, and nothing else. They are signed by Herald with
// a key of its own (HS256), never by the SMART authorization server, carry
// Herald's base URL as audience, expire in minutes and name the
// Subscription whose owner's authorization still applies when they are
// used (package api checks the route, the owner's policy and the read).
package notifytoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// DefaultTTL is how long a token lasts when no TTL is configured.
const DefaultTTL = 5 * time.Minute

// tokenType is the JWT typ header that tells a notification token from a
// SMART access token before any key is chosen.
const tokenType = "herald-notification+jwt"

// Issuer mints and verifies tokens with one key.
type Issuer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// New returns an Issuer. key is Herald's own (at least 32 bytes), ttl the
// lifetime (0: DefaultTTL), now the clock (nil: time.Now). Tokens are
// minted for and verified against an audience, Herald's base URL, which
// is also their issuer.
func New(key []byte, ttl time.Duration, now func() time.Time) (*Issuer, error) {
	if len(key) < 32 {
		return nil, errors.New("notifytoken: the key must be at least 32 bytes")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Issuer{key: append([]byte(nil), key...), ttl: ttl, now: now}, nil
}

// KeyFrom derives the token key from Herald's secret key
// (HERALD_SECRET_KEY), so every instance sharing it accepts the others'
// tokens; without one (the embedded store) a random key serves this process.
func KeyFrom(secretKey []byte) []byte {
	if len(secretKey) == 0 {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte("herald notification access tokens v1"))
	return mac.Sum(nil)
}

// Grant is what a verified token allows: reading the resources Refs name,
// on behalf of the owner of Subscription.
type Grant struct {
	Subscription string
	Refs         []store.VersionRef
	ExpiresAt    time.Time
	owner        string // ownerDigest of the Subscription's owner at minting
}

// OwnedBy reports whether o owned the Subscription when the token was
// minted. An id can change hands (an admin may create a Subscription at
// the id of a deleted one): a token reads with its own owner's grants or
// not at all.
func (g Grant) OwnedBy(o store.SubscriptionOwner) bool {
	return g.owner != "" && hmac.Equal([]byte(g.owner), []byte(ownerDigest(o)))
}

// ownerDigest names an owner in a token without showing its client id or
// launch context (a patient id) to whoever holds the token.
func ownerDigest(o store.SubscriptionOwner) string {
	sum := sha256.Sum256([]byte(o.Client + "\x00" + o.Context))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Allows reports whether the grant covers reading typ/id: its current
// version (version 0) or the version the grant names.
func (g Grant) Allows(typ, id string, version int64) bool {
	for _, r := range g.Refs {
		if r.Type == typ && r.ID == id && (version == 0 || version == r.Version) {
			return true
		}
	}
	return false
}

type claims struct {
	jwt.RegisteredClaims
	Resources []string `json:"herald_resources"` // store.VersionRef strings
	Owner     string   `json:"herald_owner"`     // ownerDigest
}

// Mint returns a token for reading refs from audience (Herald's base URL)
// on behalf of subscription's owner, and when it expires.
func (i *Issuer) Mint(audience, subscription string, owner store.SubscriptionOwner, refs []store.VersionRef) (string, time.Time, error) {
	now := i.now()
	exp := now.Add(i.ttl)
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: audience, Subject: subscription, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}, Owner: ownerDigest(owner)}
	for _, r := range refs {
		c.Resources = append(c.Resources, r.String())
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["typ"] = tokenType
	s, err := t.SignedString(i.key)
	return s, exp, err
}

// Is reports whether token claims to be a notification token (by its typ
// header; nothing is verified). Such a token is verified with Verify only,
// never as a SMART token.
func Is(token string) bool {
	header, _, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	p := jwt.NewParser()
	b, err := p.DecodeSegment(header)
	if err != nil || strictjson.Unmarshal(b, &h) != nil {
		return false
	}
	return h.Typ == tokenType
}

// ErrInvalid is wrapped by every refusal of Verify; its text never holds
// the token.
var ErrInvalid = errors.New("notification token not valid")

// Verify checks the signature (HS256 with the Issuer's key only), typ,
// audience and issuer (both audience) and expiry, and returns the grant.
func (i *Issuer) Verify(audience, token string) (Grant, error) {
	var c claims
	t, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != tokenType {
			return nil, errors.New("not a notification token")
		}
		return i.key, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(audience), jwt.WithIssuer(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(i.now))
	if err != nil || !t.Valid || c.Subject == "" || c.Owner == "" {
		return Grant{}, ErrInvalid
	}
	g := Grant{Subscription: c.Subject, ExpiresAt: c.ExpiresAt.Time, owner: c.Owner}
	for _, s := range c.Resources {
		if r, ok := store.ParseVersionRef(s); ok {
			g.Refs = append(g.Refs, r)
		}
	}
	return g, nil
}
