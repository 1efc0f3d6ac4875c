package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// jwksServer serves a JWK Set that tests can swap, and counts fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int32
}

// publicKey is one JWKS entry: a public key and its kid.
type publicKey struct {
	kid string
	key any
}

func newJWKSServer(t *testing.T, keys ...publicKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...publicKey) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid}})
		require.NoError(t, err)
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	s.body.Store(&b)
}

func newJWKSVerifier(t *testing.T, url string, secret []byte) *Verifier {
	t.Helper()
	v, err := NewVerifier(t.Context(), VerifierConfig{
		JWKSURL:     url,
		HS256Secret: secret,
		Issuer:      "https://idp.example",
		Audience:    "herald",
		Now:         func() time.Time { return testNow },
		CacheSize:   -1, // these tests are about keys, not the cache
	})
	require.NoError(t, err)
	return v
}

func idpClaims(overrides map[string]any) jwt.MapClaims {
	c := good(overrides)
	if _, ok := overrides["iss"]; !ok {
		c["iss"] = "https://idp.example"
	}
	if _, ok := overrides["aud"]; !ok {
		c["aud"] = "herald"
	}
	return c
}

func TestVerifyJWKS(t *testing.T) {
	t.Parallel()
	rsaA, ecB := rsaKey(t), ecKey(t)
	srv := newJWKSServer(t, publicKey{"rsa-a", &rsaA.PublicKey}, publicKey{"ec-b", &ecB.PublicKey})
	stranger := rsaKey(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaA.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	tests := []struct {
		name   string
		secret []byte // also configure HS256
		token  string
		reason string // "" means accepted
	}{
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, rsaA, "rsa-a", idpClaims(nil))},
		{name: "ES256", token: sign(t, jwt.SigningMethodES256, ecB, "ec-b", idpClaims(nil))},
		{name: "RS256 without kid tries matching keys", token: sign(t, jwt.SigningMethodRS256, rsaA, "", idpClaims(nil))},
		{name: "ES256 without kid tries matching keys", token: sign(t, jwt.SigningMethodES256, ecB, "", idpClaims(nil))},
		{name: "HS256 beside JWKS", secret: testSecret, token: sign(t, jwt.SigningMethodHS256, testSecret, "", idpClaims(nil))},
		{name: "expired", token: sign(t, jwt.SigningMethodRS256, rsaA, "rsa-a", idpClaims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), reason: "token expired"},
		{name: "no exp", token: sign(t, jwt.SigningMethodES256, ecB, "ec-b", idpClaims(map[string]any{"exp": nil})), reason: "token has no exp"},
		{name: "wrong issuer", token: sign(t, jwt.SigningMethodRS256, rsaA, "rsa-a", idpClaims(map[string]any{"iss": "https://evil"})), reason: "issuer mismatch"},
		{name: "wrong audience", token: sign(t, jwt.SigningMethodRS256, rsaA, "rsa-a", idpClaims(map[string]any{"aud": "other"})), reason: "audience mismatch"},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-a", idpClaims(nil)), reason: "signing method not allowed"},
		{
			name:   "HS256 keyed with the RSA public key, JWKS only",
			token:  sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-a", idpClaims(nil)),
			reason: "signing method not allowed",
		},
		{
			name:   "HS256 keyed with the RSA public key DER, JWKS only",
			token:  sign(t, jwt.SigningMethodHS256, pubDER, "rsa-a", idpClaims(nil)),
			reason: "signing method not allowed",
		},
		{
			name:   "HS256 keyed with the RSA public key, HS256 also on",
			secret: testSecret,
			token:  sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-a", idpClaims(nil)),
			reason: "signature invalid",
		},
		{name: "forged signature", token: forgeSignature(t, sign(t, jwt.SigningMethodRS256, rsaA, "rsa-a", idpClaims(nil))), reason: "signature invalid"},
		{name: "signed by a stranger under a known kid", token: sign(t, jwt.SigningMethodRS256, stranger, "rsa-a", idpClaims(nil)), reason: "signature invalid"},
		{name: "signed by a stranger without kid", token: sign(t, jwt.SigningMethodRS256, stranger, "", idpClaims(nil)), reason: "signature invalid"},
		{name: "ES256 naming an RSA kid", token: sign(t, jwt.SigningMethodES256, ecB, "rsa-a", idpClaims(nil)), reason: "signing key not found"},
		{name: "RS256 naming an EC kid", token: sign(t, jwt.SigningMethodRS256, rsaA, "ec-b", idpClaims(nil)), reason: "signing key not found"},
		{name: "RS384 not allowed", token: sign(t, jwt.SigningMethodRS384, rsaA, "rsa-a", idpClaims(nil)), reason: "signing method not allowed"},
		{name: "PS256 not allowed", token: sign(t, jwt.SigningMethodPS256, rsaA, "rsa-a", idpClaims(nil)), reason: "signing method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newJWKSVerifier(t, srv.URL, tt.secret)
			p, err := v.Verify(t.Context(), tt.token)
			if tt.reason != "" {
				require.Nil(t, p)
				requireRejected(t, err, tt.reason, tt.token)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "client-1", p.ClientID)
			require.True(t, p.Can(Read, "Encounter"))
			require.True(t, p.Admin)
		})
	}
}

// forgeSignature flips the first byte of the signature.
func forgeSignature(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	sig, err := jwt.NewParser().DecodeSegment(parts[2])
	require.NoError(t, err)
	sig[0] ^= 0xff
	parts[2] = (&jwt.Token{}).EncodeSegment(sig)
	return strings.Join(parts, ".")
}

func TestVerifyJWKSUnknownKID(t *testing.T) {
	t.Parallel()
	known := rsaKey(t)
	srv := newJWKSServer(t, publicKey{"known", &known.PublicKey})
	v := newJWKSVerifier(t, srv.URL, nil)
	require.EqualValues(t, 1, srv.fetches.Load(), "NewVerifier fetches the set")

	tok := sign(t, jwt.SigningMethodRS256, rsaKey(t), "nobody", idpClaims(nil))
	_, err := v.Verify(t.Context(), tok)
	requireRejected(t, err, "signing key not found", tok)
	require.EqualValues(t, 2, srv.fetches.Load(), "an unknown kid refreshes once")

	// Further unknown kids are refused at once without hammering the IdP.
	start := time.Now()
	for range 5 {
		_, err = v.Verify(t.Context(), tok)
		requireRejected(t, err, "signing key not found", tok)
	}
	require.EqualValues(t, 2, srv.fetches.Load())
	require.Less(t, time.Since(start), 5*time.Second)

	// Known keys keep working.
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, known, "known", idpClaims(nil)))
	require.NoError(t, err)
}

func TestVerifyJWKSRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), ecKey(t)
	srv := newJWKSServer(t, publicKey{"2025-01", &oldKey.PublicKey})
	v := newJWKSVerifier(t, srv.URL, nil)

	_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, oldKey, "2025-01", idpClaims(nil)))
	require.NoError(t, err)

	// The IdP rotates: the old key is gone, a new one with a new kid appears.
	srv.set(t, publicKey{"2025-06", &newKey.PublicKey})
	p, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, newKey, "2025-06", idpClaims(nil)))
	require.NoError(t, err, "an unknown kid triggers a refresh")
	require.Equal(t, "client-1", p.ClientID)
	require.EqualValues(t, 2, srv.fetches.Load())

	// The refresh replaced the set, so the retired key no longer verifies.
	old := sign(t, jwt.SigningMethodRS256, oldKey, "2025-01", idpClaims(map[string]any{"jti": "fresh"}))
	_, err = v.Verify(t.Context(), old)
	requireRejected(t, err, "signing key not found", old)
}

func TestNewVerifierJWKSUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	_, err := NewVerifier(t.Context(), VerifierConfig{JWKSURL: srv.URL})
	require.ErrorContains(t, err, "auth: JWKS")
}

func TestNewVerifierUsesHTTPClient(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	srv := newJWKSServer(t, publicKey{"k", &k.PublicKey})
	var used atomic.Bool
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	_, err := NewVerifier(t.Context(), VerifierConfig{JWKSURL: srv.URL, HTTPClient: client})
	require.NoError(t, err)
	require.True(t, used.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
