package securitytest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

// unsigned hand-crafts an unsecured JWT: header.payload. with the given
// signature part (empty for a true alg "none" token).
func unsigned(t *testing.T, header string, c jwt.MapClaims, sig string) string {
	t.Helper()
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "." + sig
}

func without(c jwt.MapClaims, names ...string) jwt.MapClaims {
	for _, n := range names {
		delete(c, n)
	}
	return c
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// attacked are the requests every bad token is tried on: a FHIR create, a
// search, a Subscription create, a batch write and both sides of the admin
// API.
func attacked(h *harness) []struct{ method, path, body, contentType string } {
	return []struct{ method, path, body, contentType string }{
		{"POST", "/fhir/Patient", `{"resourceType":"Patient","active":true}`, ""},
		{"GET", "/fhir/Patient", "", ""},
		{"POST", "/fhir/Subscription", subscriptionJSON(hookBase + "attacker"), ""},
		{"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]}`, ""},
		{"GET", "/admin/endpoints", "", ""},
		{"POST", "/admin/endpoints", `{"url_prefix":"http://169.254.169.254/","allow_private_network":true}`, "application/json"},
		{"PUT", "/admin/clients/attacker", `{"status":"active","max_payload":"full-resource"}`, "application/json"},
	}
}

// TestTokenAttacks: every forged, expired, unsigned, confused or misaddressed
// token is a 401 OperationOutcome with a Bearer challenge on every route,
// and nothing is stored; the same requests with valid HS256 and RS256
// tokens of the same scopes succeed, so the refusals are the tokens' doing.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const scope = "system/*.cruds herald.admin"
		key := rsaKey()
		stranger := strangerKey()
		pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		otherSecret := []byte("another-secret-0123456789-abcdefghijklmnop")
		forged, err := auth.MintHS256(otherSecret, auth.MintClaims{ClientID: "test-client", Scope: scope, TTL: time.Hour, Issuer: issuer, Audience: audience})
		require.NoError(t, err)
		expired := h.token(scope, func(c *auth.MintClaims) { c.Now = time.Now().Add(-2 * time.Hour) })
		valid := h.token(scope)
		parts := strings.Split(valid, ".")
		validRS := sign(t, jwt.SigningMethodRS256, key, rsaKID, claims(scope))

		cases := []struct{ name, token string }{
			{"forged signature (HS256, another secret)", forged},
			{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]},
			{"payload swapped under a valid signature", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"client_id":"x","scope":"system/*.cruds herald.admin","exp":9999999999,"iss":"`+issuer+`","aud":"`+audience+`"}`)) + "." + parts[2]},
			{"expired", expired},
			{"expired RS256", sign(t, jwt.SigningMethodRS256, key, rsaKID, with(claims(scope), "exp", time.Now().Add(-time.Hour).Unix()))},
			{"missing exp", sign(t, jwt.SigningMethodHS256, h.hsKey, "", without(claims(scope), "exp"))},
			{"missing exp RS256", sign(t, jwt.SigningMethodRS256, key, rsaKID, without(claims(scope), "exp"))},
			{"not yet valid", sign(t, jwt.SigningMethodHS256, h.hsKey, "", with(claims(scope), "nbf", time.Now().Add(time.Hour).Unix()))},
			{"alg none", unsigned(t, `{"alg":"none","typ":"JWT"}`, claims(scope), "")},
			{"alg None", unsigned(t, `{"alg":"None","typ":"JWT"}`, claims(scope), "")},
			{"alg NONE with a valid HS256 signature kept", unsigned(t, `{"alg":"NONE","typ":"JWT"}`, claims(scope), parts[2])},
			{"alg none naming the JWKS kid", unsigned(t, `{"alg":"none","kid":"`+rsaKID+`"}`, claims(scope), "")},
			{"HS256 keyed with the RSA public key (PEM)", sign(t, jwt.SigningMethodHS256, pubPEM, rsaKID, claims(scope))},
			{"HS256 keyed with the RSA public key (DER)", sign(t, jwt.SigningMethodHS256, pubDER, rsaKID, claims(scope))},
			{"HS256 keyed with the RSA modulus", sign(t, jwt.SigningMethodHS256, key.PublicKey.N.Bytes(), "", claims(scope))},
			{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, h.hsKey, "", claims(scope))},
			{"PS256 with the JWKS key", sign(t, jwt.SigningMethodPS256, key, rsaKID, claims(scope))},
			{"RS256 by a stranger under the known kid", sign(t, jwt.SigningMethodRS256, stranger, rsaKID, claims(scope))},
			{"RS256 by a stranger without kid", sign(t, jwt.SigningMethodRS256, stranger, "", claims(scope))},
			{"RS256 with an unknown kid", sign(t, jwt.SigningMethodRS256, key, "rsa-unknown", claims(scope))},
			{"wrong aud", h.token(scope, func(c *auth.MintClaims) { c.Audience = "https://other.example/fhir" })},
			{"wrong aud RS256", sign(t, jwt.SigningMethodRS256, key, rsaKID, with(claims(scope), "aud", "https://other.example/fhir"))},
			{"aud of a prefix", sign(t, jwt.SigningMethodRS256, key, rsaKID, with(claims(scope), "aud", "https://herald.securitytest.example"))},
			{"missing aud", sign(t, jwt.SigningMethodHS256, h.hsKey, "", without(claims(scope), "aud"))},
			{"wrong iss", h.token(scope, func(c *auth.MintClaims) { c.Issuer = "https://evil.example" })},
			{"wrong iss RS256", sign(t, jwt.SigningMethodRS256, key, rsaKID, with(claims(scope), "iss", "https://idp.securitytest.example.evil"))},
			{"missing iss", sign(t, jwt.SigningMethodRS256, key, rsaKID, without(claims(scope), "iss"))},
			{"no client_id or sub", sign(t, jwt.SigningMethodHS256, h.hsKey, "", without(claims(scope), "client_id", "sub"))},
			{"malformed", "not.a.jwt"},
		}
		before := h.endpoints()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				for _, req := range attacked(h) {
					var headers []string
					if req.contentType != "" {
						headers = append(headers, "Content-Type: "+req.contentType)
					}
					r := h.request(req.method, req.path, c.token, req.body, headers...)
					requireOutcome(t, r, 401, "invalid bearer token")
					require.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer"), req.path)
					for _, part := range strings.Split(c.token, ".") {
						if len(part) >= 8 {
							require.NotContains(t, string(r.body), part, "a 401 never echoes the token")
						}
					}
				}
			})
		}
		// Nothing was stored.
		require.Zero(t, h.count("Patient"))
		require.Zero(t, h.count("Subscription"))
		require.Empty(t, h.states())
		require.Equal(t, before, h.endpoints())
		_, err = h.st.Client(t.Context(), "attacker")
		require.Error(t, err, "no client registry entry was written")

		// Valid tokens of both kinds pass the same routes.
		for _, tok := range []string{valid, validRS} {
			require.Equal(t, 201, h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`).status)
			require.Equal(t, 200, h.request("GET", "/fhir/Patient", tok, "").status)
			require.Equal(t, 200, h.request("GET", "/admin/endpoints", tok, "").status)
		}
		require.Equal(t, 2, h.count("Patient"))
	})
}

// TestAlgorithmConfusionWithJWKSOnly: with only a JWKS configured (no
// HS256 secret), an HS256 token keyed with the RSA public key that the JWKS
// publishes must not verify: HS256 is not an accepted algorithm at all.
func TestAlgorithmConfusionWithJWKSOnly(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t), jwksOnly)
	const scope = "system/*.cruds herald.admin"
	key := rsaKey()
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1 := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	for name, tok := range map[string]string{
		"PEM":                        sign(t, jwt.SigningMethodHS256, pubPEM, rsaKID, claims(scope)),
		"PEM without kid":            sign(t, jwt.SigningMethodHS256, pubPEM, "", claims(scope)),
		"DER":                        sign(t, jwt.SigningMethodHS256, pubDER, rsaKID, claims(scope)),
		"PKCS1":                      sign(t, jwt.SigningMethodHS256, pkcs1, rsaKID, claims(scope)),
		"HS256 with an empty key":    unsignedHS256Empty(t, claims(scope)),
		"the old HS256 secret":       sign(t, jwt.SigningMethodHS256, []byte(hsSecret), "", claims(scope)),
		"alg none naming the kid":    unsigned(t, `{"alg":"none","kid":"`+rsaKID+`"}`, claims(scope), ""),
		"RS256 header, no signature": unsigned(t, `{"alg":"RS256","kid":"`+rsaKID+`"}`, claims(scope), ""),
	} {
		t.Run(name, func(t *testing.T) {
			for _, req := range attacked(h) {
				var headers []string
				if req.contentType != "" {
					headers = append(headers, "Content-Type: "+req.contentType)
				}
				requireOutcome(t, h.request(req.method, req.path, tok, req.body, headers...), 401, "")
			}
		})
	}
	require.Zero(t, h.count("Patient"))
	require.Empty(t, h.states())
	// The real RS256 token works.
	require.Equal(t, 201, h.request("POST", "/fhir/Patient", sign(t, jwt.SigningMethodRS256, key, rsaKID, claims(scope)), `{"resourceType":"Patient"}`).status)
}

// unsignedHS256Empty is an HS256 token whose HMAC key is empty.
func unsignedHS256Empty(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SigningString()
	require.NoError(t, err)
	mac := hmac.New(sha256.New, nil)
	mac.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// strangerKey is an RSA key the identity provider never published.
var strangerKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// TestScopeEscalation: a valid token asking for more than its scopes allow
// is a 403 OperationOutcome, and nothing is stored: writes without a write
// scope, a Subscription over a topic the token cannot read, payloads above
// the ceiling, topic writes and the admin API without herald.admin.
func TestScopeEscalation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		encReader := h.token("system/Encounter.rs")
		subEnc := h.token("system/Subscription.cruds system/Encounter.rs")
		allFHIR := h.token("system/*.cruds")
		adminOnly := h.token("herald.admin")
		lab := func(m map[string]any) {
			withTopic(newLabResult)(m)
			withFilter("Observation?patient=Patient/p1")(m)
		}
		endpointsBefore := h.endpoints()

		cases := []struct {
			name, tok, method, path, body, contentType string
			status                                     int
		}{
			{"create with a read scope", encReader, "POST", "/fhir/Encounter", encounter("e1", "p1", ""), "", 403},
			{"update-as-create with a read scope", encReader, "PUT", "/fhir/Encounter/e1", encounter("e1", "p1", ""), "", 403},
			{"delete with a read scope", encReader, "DELETE", "/fhir/Encounter/e1", "", "", 403},
			{"read another type", encReader, "GET", "/fhir/Patient", "", "", 403},
			{"transaction with a read scope", encReader, "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Encounter"},"resource":` + encounter("", "p1", "") + `}]}`, "", 403},
			{"Subscription without Subscription scope", encReader, "POST", "/fhir/Subscription", subscriptionJSON(hookBase + "x"), "", 403},
			{"Subscription on a topic over Observation", subEnc, "POST", "/fhir/Subscription", subscriptionJSON(hookBase+"x", lab), "", 403},
			{"Subscription on a topic over Patient", subEnc, "POST", "/fhir/Subscription", subscriptionJSON(hookBase+"x", withTopic("https://herald.dev/fhir/SubscriptionTopic/patient-demographics-changed"), withFilter("Patient?patient=Patient/p1")), "", 403},
			{"Subscription full-resource above the ceiling", subEnc, "POST", "/fhir/Subscription", subscriptionJSON(hookBase+"x", withContent("full-resource")), "", 403},
			{"admin list", subEnc, "GET", "/admin/endpoints", "", "", 403},
			{"admin list with every FHIR scope", allFHIR, "GET", "/admin/endpoints", "", "", 403},
			{"admin allow-list add", allFHIR, "POST", "/admin/endpoints", `{"url_prefix":"http://169.254.169.254/","allow_private_network":true}`, "application/json", 403},
			{"admin allow-list remove", allFHIR, "DELETE", "/admin/endpoints/hooks", "", "", 403},
			{"admin client raise", allFHIR, "PUT", "/admin/clients/test-client", `{"status":"active","max_payload":"full-resource"}`, "application/json", 403},
			{"admin client read", encReader, "GET", "/admin/clients", "", "", 403},
			{"topic write without herald.admin", allFHIR, "PUT", "/fhir/SubscriptionTopic/evil", `{"resourceType":"SubscriptionTopic","id":"evil","url":"https://evil.example/t","status":"active","resourceTrigger":[{"resource":"Patient"}]}`, "", 403},
			{"topic delete without herald.admin", allFHIR, "DELETE", "/fhir/SubscriptionTopic/encounter-start", "", "", 403},
			{"herald.admin grants no FHIR read", adminOnly, "GET", "/fhir/Patient", "", "", 403},
			{"herald.admin grants no FHIR write", adminOnly, "POST", "/fhir/Patient", `{"resourceType":"Patient"}`, "", 403},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var headers []string
				if c.contentType != "" {
					headers = append(headers, "Content-Type: "+c.contentType)
				}
				r := h.request(c.method, c.path, c.tok, c.body, headers...)
				requireOutcome(t, r, c.status, "")
				require.Empty(t, r.header.Get("Location"))
			})
		}
		// Nothing was stored or changed.
		require.Zero(t, h.count("Encounter"))
		require.Zero(t, h.count("Patient"))
		require.Zero(t, h.count("Subscription"))
		require.Empty(t, h.states())
		require.Equal(t, endpointsBefore, h.endpoints())
		clients, err := h.st.Clients(t.Context())
		require.NoError(t, err)
		require.Empty(t, clients)
		require.Nil(t, h.history("SubscriptionTopic", "evil"))
		require.Equal(t, 200, h.request("GET", "/fhir/SubscriptionTopic/encounter-start", encReader, "").status)
		require.Empty(t, h.recv.all())

		// The same token may subscribe to what it can read: the refusal was the topic's.
		r := h.request("POST", "/fhir/Subscription", subEnc, subscriptionJSON(hookBase+"x"))
		require.Equal(t, 201, r.status, string(r.body))
		require.Len(t, h.states(), 1)
	})
}
