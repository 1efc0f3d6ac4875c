package auth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// MinHS256SecretLen is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output.
const MinHS256SecretLen = 32

const (
	// leeway absorbs clock skew between the issuer and Herald.
	leeway = 30 * time.Second
	// maxTokenLen bounds the work an unauthenticated request can cause.
	maxTokenLen = 16 << 10
	// DefaultCacheSize is the verified-token cache size when
	// VerifierConfig.CacheSize is 0.
	DefaultCacheSize = 4096
)

// Signing algorithms. Each is allowed only with its own kind of key, which
// is what makes algorithm confusion impossible.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// VerifierConfig configures a [Verifier]. At least one of HS256Secret and
// JWKSURL is required; with both, each token is checked against the key kind
// its alg names.
type VerifierConfig struct {
	// HS256Secret enables HS256 tokens (development and tests).
	HS256Secret []byte
	// JWKSURL enables RS256 and ES256 tokens, keyed by kid. The set is
	// fetched once by NewVerifier, hourly after that, and again (rate
	// limited) when a token names an unknown kid, which picks up rotation.
	JWKSURL string
	// Issuer and Audience, when set, must match iss and aud.
	Issuer, Audience string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// HTTPClient fetches the JWKS; http.DefaultClient when nil.
	HTTPClient *http.Client
	// CacheSize bounds the verified-token cache: 0 means
	// DefaultCacheSize, negative disables it. A cached token is trusted
	// until its exp or for one minute, whichever is sooner.
	CacheSize int
	// Logger receives JWKS refresh failures; slog.Default() when nil.
	Logger *slog.Logger
}

// Verifier turns bearer tokens into Principals. It is safe for concurrent
// use.
type Verifier struct {
	parser  *jwt.Parser
	methods []string
	secret  []byte
	jwks    keyfunc.Keyfunc
	now     func() time.Time
	cache   *tokenCache
	// wantIss and wantAud only let reason() tell which claim was missing.
	wantIss, wantAud bool
}

// NewVerifier builds a Verifier. With a JWKSURL it fetches the key set
// before returning, so a wrong URL fails at start rather than on the first
// request; cancelling ctx stops the background refresh.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: neither an HS256 secret nor a JWKS URL is configured")
	}
	v := &Verifier{now: cfg.Now, wantIss: cfg.Issuer != "", wantAud: cfg.Audience != ""}
	if v.now == nil {
		v.now = time.Now
	}
	if len(cfg.HS256Secret) > 0 {
		if len(cfg.HS256Secret) < MinHS256SecretLen {
			return nil, fmt.Errorf("auth: the HS256 secret must be at least %d bytes", MinHS256SecretLen)
		}
		v.secret = slices.Clone(cfg.HS256Secret)
		v.methods = append(v.methods, algHS256)
	}
	if cfg.JWKSURL != "" {
		jwks, err := newJWKS(ctx, cfg.JWKSURL, cfg.HTTPClient, cmp.Or(cfg.Logger, slog.Default()))
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
		}
		v.jwks = jwks
		v.methods = append(v.methods, algRS256, algES256)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(v.now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	switch {
	case cfg.CacheSize == 0:
		v.cache = newTokenCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

// Verify checks rawToken's signature and claims and returns its Principal.
// Every error is an [*Error] wrapping [ErrUnauthenticated].
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	if rawToken == "" {
		return nil, unauthenticated("no token", nil)
	}
	if len(rawToken) > maxTokenLen {
		return nil, unauthenticated("token too large", nil)
	}
	var key [sha256.Size]byte
	if v.cache != nil {
		// Copying through a stack buffer keeps the hot cached path free of
		// allocations for typical tokens; longer ones spill to the heap.
		var buf [2048]byte
		key = sha256.Sum256(append(buf[:0], rawToken...))
		if p := v.cache.get(key, v.now()); p != nil {
			return p, nil
		}
	}
	var c claims
	tok, err := v.parser.ParseWithClaims(rawToken, &c, v.keyfunc(ctx))
	if err != nil {
		return nil, unauthenticated(v.reason(tok, &c, err), err)
	}
	p, err := principal(&c)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(key, p, v.now())
	}
	return p, nil
}

func principal(c *claims) (*Principal, error) {
	id := cmp.Or(c.ClientID, c.Subject)
	if id == "" {
		return nil, unauthenticated("token has no client_id or sub", nil)
	}
	p := &Principal{
		ClientID:  id,
		RawScopes: c.Scope,
		Scopes:    ParseScopes(c.Scope...),
		Patient:   c.Patient,
		User:      userOf(c.FHIRUser, c.Subject),
		ExpiresAt: c.ExpiresAt.UTC(), // WithExpirationRequired guarantees exp
	}
	p.Admin = p.Scopes.Admin()
	return p, nil
}

// keyfunc picks the key by alg, so an HS256 token is only ever checked
// against the shared secret and RS256/ES256 only against JWKS keys of the
// matching type.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		switch alg := t.Method.Alg(); alg {
		case algHS256:
			if v.secret != nil {
				return v.secret, nil
			}
		case algRS256, algES256:
			if v.jwks != nil {
				return jwksKey(ctx, v.jwks, t, alg)
			}
		}
		return nil, errMethodNotAllowed
	}
}

var errMethodNotAllowed = errors.New("signing method not allowed")

// reason maps a jwt error to a fixed phrase. The jwt errors themselves can
// quote header values, so they never reach Error().
func (v *Verifier) reason(tok *jwt.Token, c *claims, err error) string {
	switch {
	case tok == nil || errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	case tok.Method == nil || !slices.Contains(v.methods, tok.Method.Alg()), errors.Is(err, errMethodNotAllowed):
		return "signing method not allowed"
	case errors.Is(err, errKeyNotFound):
		return "signing key not found"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signing key unavailable"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature invalid"
	case c.ExpiresAt == nil:
		return "token has no exp"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not yet valid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), v.wantIss && c.Issuer == "":
		return "issuer mismatch"
	case errors.Is(err, jwt.ErrTokenInvalidAudience), v.wantAud && len(c.Audience) == 0:
		return "audience mismatch"
	}
	return "token invalid"
}

// userOf names who a user/ token acts for: its fhirUser (a FHIR reference
// such as Practitioner/alice), else its sub in a namespace of its own, so
// that a sub spelled like a reference can never stand for that user.
func userOf(fhirUser, sub string) string {
	if fhirUser != "" {
		return fhirUser
	}
	return "sub:" + sub
}
