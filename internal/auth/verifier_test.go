package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	testNow    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time source for Verifier.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// sign builds a token with arbitrary claims and headers.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// good is a valid claim set at testNow; overrides set or (with nil) delete.
func good(overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"client_id": "client-1",
		"sub":       "user-9",
		"scope":     "system/Encounter.rs herald.admin",
		"exp":       testNow.Add(time.Hour).Unix(),
		"iat":       testNow.Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// requireRejected checks the error kind and reason, and that no part of the
// token leaks into the message.
func requireRejected(t *testing.T, err error, reason, token string) {
	t.Helper()
	require.ErrorIs(t, err, ErrUnauthenticated)
	var ae *Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, reason, ae.Reason)
	require.Equal(t, "unauthenticated: "+reason, err.Error())
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 {
			require.NotContains(t, err.Error(), part)
		}
	}
}

func newHSVerifier(t testing.TB, cfg VerifierConfig) *Verifier {
	t.Helper()
	cfg.HS256Secret = testSecret
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	v, err := NewVerifier(context.Background(), cfg)
	require.NoError(t, err)
	return v
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }
	tests := []struct {
		name   string
		cfg    VerifierConfig
		token  string
		want   *Principal
		reason string
	}{
		{
			name:  "valid",
			token: hs(good(map[string]any{"patient": "p1"})),
			want: &Principal{User: "sub:user-9",
				ClientID: "client-1", Patient: "p1", Admin: true, ExpiresAt: testNow.Add(time.Hour),
				RawScopes: []string{"system/Encounter.rs", "herald.admin"},
				Scopes:    ParseScopes("system/Encounter.rs herald.admin"),
			},
		},
		{
			name:  "fhirUser names the user",
			token: hs(good(map[string]any{"fhirUser": "Practitioner/7", "scope": nil})),
			want:  &Principal{User: "Practitioner/7", ClientID: "client-1", ExpiresAt: testNow.Add(time.Hour)},
		},
		{
			name:  "sub names the client without client_id",
			token: hs(good(map[string]any{"client_id": nil, "scope": nil})),
			want:  &Principal{User: "sub:user-9", ClientID: "user-9", ExpiresAt: testNow.Add(time.Hour)},
		},
		{
			name:  "scope as array, unknown scopes kept raw only",
			token: hs(good(map[string]any{"scope": []string{"openid", "user/*.read patient/Patient.rs"}})),
			want: &Principal{User: "sub:user-9",
				ClientID: "client-1", ExpiresAt: testNow.Add(time.Hour),
				RawScopes: []string{"openid", "user/*.read", "patient/Patient.rs"},
				Scopes:    ParseScopes("user/*.rs patient/Patient.rs"),
			},
		},
		{
			name:  "issuer and audience match",
			cfg:   VerifierConfig{Issuer: "https://idp", Audience: "herald"},
			token: hs(good(map[string]any{"iss": "https://idp", "aud": []string{"other", "herald"}, "scope": nil})),
			want:  &Principal{User: "sub:user-9", ClientID: "client-1", ExpiresAt: testNow.Add(time.Hour)},
		},
		{
			name:  "within leeway",
			token: hs(good(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix(), "scope": nil})),
			want:  &Principal{User: "sub:user-9", ClientID: "client-1", ExpiresAt: testNow.Add(-10 * time.Second)},
		},
		{name: "expired", token: hs(good(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), reason: "token expired"},
		{name: "no exp", token: hs(good(map[string]any{"exp": nil})), reason: "token has no exp"},
		{name: "exp not a number", token: hs(good(map[string]any{"exp": "tomorrow"})), reason: "token malformed"},
		{name: "not yet valid", token: hs(good(map[string]any{"nbf": testNow.Add(time.Hour).Unix()})), reason: "token not yet valid"},
		{name: "no client", token: hs(good(map[string]any{"client_id": nil, "sub": nil})), reason: "token has no client_id or sub"},
		{name: "scope of wrong type", token: hs(good(map[string]any{"scope": 42})), reason: "token malformed"},
		{name: "wrong issuer", cfg: VerifierConfig{Issuer: "https://idp"}, token: hs(good(map[string]any{"iss": "https://evil"})), reason: "issuer mismatch"},
		{name: "missing issuer", cfg: VerifierConfig{Issuer: "https://idp"}, token: hs(good(nil)), reason: "issuer mismatch"},
		{name: "wrong audience", cfg: VerifierConfig{Audience: "herald"}, token: hs(good(map[string]any{"aud": "other"})), reason: "audience mismatch"},
		{name: "missing audience", cfg: VerifierConfig{Audience: "herald"}, token: hs(good(nil)), reason: "audience mismatch"},
		{
			name:   "wrong secret",
			token:  sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-32"), "", good(nil)),
			reason: "signature invalid",
		},
		{name: "HS512 not allowed", token: sign(t, jwt.SigningMethodHS512, testSecret, "", good(nil)), reason: "signing method not allowed"},
		{
			name:   "alg none",
			token:  sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good(nil)),
			reason: "signing method not allowed",
		},
		{name: "RS256 without JWKS", token: sign(t, jwt.SigningMethodRS256, rsaKey(t), "k1", good(nil)), reason: "signing method not allowed"},
		{name: "ES256 without JWKS", token: sign(t, jwt.SigningMethodES256, ecKey(t), "k1", good(nil)), reason: "signing method not allowed"},
		{name: "unknown alg", token: forgeHeader(t, hs(good(nil)), `{"alg":"XX999","typ":"JWT"}`), reason: "signing method not allowed"},
		{name: "tampered payload", token: swapPayload(t, hs(good(nil)), hs(good(map[string]any{"client_id": "admin"}))), reason: "signature invalid"},
		{name: "garbage", token: "not-a-jwt-at-all", reason: "token malformed"},
		{name: "two segments", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0", reason: "token malformed"},
		{name: "empty", token: "", reason: "no token"},
		{name: "too large", token: strings.Repeat("a", maxTokenLen+1), reason: "token too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newHSVerifier(t, tt.cfg)
			p, err := v.Verify(t.Context(), tt.token)
			if tt.reason != "" {
				require.Nil(t, p)
				requireRejected(t, err, tt.reason, tt.token)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, p)
		})
	}
}

// forgeHeader replaces a token's header, keeping payload and signature.
func forgeHeader(t *testing.T, token, header string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	parts[0] = b64(header)
	return strings.Join(parts, ".")
}

// swapPayload puts other's payload under token's header and signature.
func swapPayload(t *testing.T, token, other string) string {
	t.Helper()
	a, b := strings.Split(token, "."), strings.Split(other, ".")
	a[1] = b[1]
	return strings.Join(a, ".")
}

func b64(s string) string { return (&jwt.Token{}).EncodeSegment([]byte(s)) }

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  VerifierConfig
		want string
	}{
		{name: "nothing configured", cfg: VerifierConfig{}, want: "neither an HS256 secret nor a JWKS URL"},
		{name: "short secret", cfg: VerifierConfig{HS256Secret: []byte("secret")}, want: "at least 32 bytes"},
		{name: "bad JWKS URL", cfg: VerifierConfig{JWKSURL: "::not a url"}, want: "JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewVerifier(t.Context(), tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestVerifierCache(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v := newHSVerifier(t, VerifierConfig{Now: clk.Now})
	short := sign(t, jwt.SigningMethodHS256, testSecret, "", good(map[string]any{"exp": testNow.Add(90 * time.Second).Unix()}))
	long := sign(t, jwt.SigningMethodHS256, testSecret, "", good(nil))

	p1, err := v.Verify(t.Context(), long)
	require.NoError(t, err)
	p2, err := v.Verify(t.Context(), long)
	require.NoError(t, err)
	require.Same(t, p1, p2, "second verification should come from the cache")

	s1, err := v.Verify(t.Context(), short)
	require.NoError(t, err)

	// After the one-minute cap, long is verified afresh (a new Principal).
	clk.Add(61 * time.Second)
	p3, err := v.Verify(t.Context(), long)
	require.NoError(t, err)
	require.NotSame(t, p1, p3)
	require.Equal(t, p1, p3)

	s2, err := v.Verify(t.Context(), short)
	require.NoError(t, err)
	require.NotSame(t, s1, s2)

	// A cached entry never outlives exp (+ the verifier's leeway).
	clk.Add(60 * time.Second)
	_, err = v.Verify(t.Context(), short)
	requireRejected(t, err, "token expired", short)
}

func TestVerifierCacheDisabled(t *testing.T) {
	t.Parallel()
	v := newHSVerifier(t, VerifierConfig{CacheSize: -1})
	require.Nil(t, v.cache)
	tok := sign(t, jwt.SigningMethodHS256, testSecret, "", good(nil))
	p1, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	p2, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	require.NotSame(t, p1, p2)
}

func TestVerifierCacheBounded(t *testing.T) {
	t.Parallel()
	v := newHSVerifier(t, VerifierConfig{CacheSize: 3})
	for i := range 20 {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, "", good(map[string]any{"jti": string(rune('a' + i))}))
		_, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		require.LessOrEqual(t, v.cache.size(), 3)
	}
}

func TestTokenCacheEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	c := newTokenCache(2)
	live := &Principal{ExpiresAt: testNow.Add(time.Hour)}
	dying := &Principal{ExpiresAt: testNow.Add(time.Second)}
	c.put([32]byte{1}, live, testNow)
	c.put([32]byte{2}, dying, testNow)
	later := testNow.Add(2 * time.Second)
	c.put([32]byte{3}, live, later)
	require.Equal(t, 2, c.size())
	require.Same(t, live, c.get([32]byte{1}, later))
	require.Nil(t, c.get([32]byte{2}, later))
	require.Same(t, live, c.get([32]byte{3}, later))
	// An already-expired principal is not stored at all.
	c.put([32]byte{4}, dying, later)
	require.Nil(t, c.get([32]byte{4}, later))
}

func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	v := newHSVerifier(t, VerifierConfig{CacheSize: 4})
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = sign(t, jwt.SigningMethodHS256, testSecret, "", good(map[string]any{"jti": string(rune('a' + i))}))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p, err := v.Verify(context.Background(), tokens[(g+i)%len(tokens)])
				if err != nil || p.ClientID != "client-1" {
					t.Errorf("Verify: %v %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
