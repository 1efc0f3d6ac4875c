package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

// signed returns a token with the given claims signed by method and key.
func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"client_id": "test-client",
		"scope":     allScopes,
		"exp":       time.Now().Add(time.Hour).Unix(),
		"iat":       time.Now().Unix(),
	}
}

// unsigned hand-crafts an alg "none" token: header.payload. with an empty signature.
func unsigned(t *testing.T, header string, claims jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "."
}

// TestAuthenticationFailures: every way of not presenting a valid token is a
// 401 OperationOutcome with a Bearer challenge, whose body never echoes the
// token, and which stores nothing.
func TestAuthenticationFailures(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherSecret := []byte("another-secret-0123456789-abcdefghijklmnop")
	expired := h.token(allScopes, func(c *auth.MintClaims) { c.Now = time.Now().Add(-2 * time.Hour) })
	forged, err := auth.MintHS256(otherSecret, auth.MintClaims{ClientID: "test-client", Scope: allScopes, TTL: time.Hour})
	require.NoError(t, err)
	noExp := goodClaims()
	delete(noExp, "exp")
	noClient := goodClaims()
	delete(noClient, "client_id")
	notYet := goodClaims()
	notYet["nbf"] = time.Now().Add(time.Hour).Unix()
	valid := h.token(allScopes)
	parts := strings.Split(valid, ".")
	// the valid token's header and payload with the signature of another token
	swapped := parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]
	// the valid signature over a payload that grants more
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"client_id":"test-client","scope":"system/*.cruds herald.admin","exp":9999999999}`)) + "." + parts[2]

	cases := []struct {
		name   string
		header string // the whole Authorization header; "" sends none
		token  string // the secret part that must never be echoed
	}{
		{"missing", "", ""},
		{"empty bearer", "Bearer ", ""},
		{"malformed", "Bearer not-a-jwt", "not-a-jwt"},
		{"malformed three parts", "Bearer aaaa.bbbb.cccc", "aaaa.bbbb.cccc"},
		{"expired", "Bearer " + expired, expired},
		{"not yet valid", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, notYet), ""},
		{"no exp", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, noExp), ""},
		{"no client_id or sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, noClient), ""},
		{"alg none", "Bearer " + unsigned(t, `{"alg":"none","typ":"JWT"}`, goodClaims()), ""},
		{"alg None", "Bearer " + unsigned(t, `{"alg":"None","typ":"JWT"}`, goodClaims()), ""},
		{"alg none with HS256 signature kept", "Bearer " + unsigned(t, `{"alg":"none","typ":"JWT"}`, goodClaims()) + parts[2], ""},
		{"forged signature (other secret)", "Bearer " + forged, forged},
		{"signature of another token", "Bearer " + swapped, swapped},
		{"tampered payload", "Bearer " + tampered, tampered},
		{"RS256 while only HS256 is configured", "Bearer " + signed(t, jwt.SigningMethodRS256, rsaKey, goodClaims()), ""},
		{"ES256 while only HS256 is configured", "Bearer " + signed(t, jwt.SigningMethodES256, ecKey, goodClaims()), ""},
		{"HS512 with the right secret", "Bearer " + signed(t, jwt.SigningMethodHS512, testSecret, goodClaims()), ""},
		{"Basic scheme", "Basic dGVzdC1jbGllbnQ6c2VjcmV0", "dGVzdC1jbGllbnQ6c2VjcmV0"},
		{"token without scheme", valid, valid},
		{"two tokens", "Bearer " + valid + " " + valid, valid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var headers []string
			if c.header != "" {
				headers = append(headers, "Authorization: "+c.header)
			}
			for _, req := range []struct{ method, path, body string }{
				{"GET", "/fhir/Patient", ""},
				{"POST", "/fhir/Patient", `{"resourceType":"Patient"}`},
				{"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]}`},
			} {
				r := h.request(req.method, req.path, "", req.body, headers...)
				requireOutcome(t, r, 401, "")
				require.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer"), r.header.Get("WWW-Authenticate"))
				secret := c.token
				if secret == "" {
					_, secret, _ = strings.Cut(c.header, " ")
				}
				if secret != "" {
					require.NotContains(t, string(r.body), secret, "a 401 never echoes the token")
					for _, seg := range strings.Split(secret, ".") {
						if len(seg) >= 8 {
							require.NotContains(t, string(r.body), seg, "a 401 never echoes part of the token")
						}
					}
				}
			}
		})
	}
	t.Cleanup(func() { require.Zero(t, h.count("Patient"), "no unauthenticated request stored anything") })
}

// TestBearerSchemeIsCaseInsensitive: RFC 9110 auth schemes are case-insensitive.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		r := h.request("GET", "/fhir/Patient", "", "", "Authorization: "+scheme+" "+tok)
		require.Equal(t, 200, r.status, scheme)
	}
}

// TestPublicEndpoints: the CapabilityStatement and the probes need no token.
func TestPublicEndpoints(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	for _, path := range []string{"/fhir/metadata", "/healthz", "/readyz"} {
		r := h.request("GET", path, "", "")
		require.Equal(t, 200, r.status, path)
		// a bad token does not turn a public endpoint into a 401 either
		r = h.request("GET", path, "", "", "Authorization: Bearer nonsense")
		require.Equal(t, 200, r.status, path)
	}
}

// TestScopesLimitInteractions: a valid token whose scopes do not cover the
// interaction gets 403, and nothing is stored or changed.
func TestScopesLimitInteractions(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p", all, `{"resourceType":"Patient","id":"p"}`).status)
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/lab", all,
			`{"resourceType":"Observation","id":"lab","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"text":"x"}}`).status)

		const (
			postP   = "POST /fhir/Patient"
			putP    = "PUT /fhir/Patient/p"    // update of an existing resource
			putNew  = "PUT /fhir/Patient/new"  // update-as-create
			delP    = "DELETE /fhir/Patient/p" // existing
			delNone = "DELETE /fhir/Patient/none"
			readP   = "GET /fhir/Patient/p"
			vreadP  = "GET /fhir/Patient/p/_history/1"
			histP   = "GET /fhir/Patient/p/_history"
			searchP = "GET /fhir/Patient"
			readO   = "GET /fhir/Observation/lab"
			searchO = "GET /fhir/Observation?_id=lab"
		)
		cases := []struct {
			scope   string
			denied  []string
			allowed []string
		}{
			{"system/Patient.r", []string{postP, putP, putNew, delP, searchP}, []string{readP, vreadP, histP}},
			{"system/Patient.s", []string{readP, vreadP, histP, postP}, []string{searchP}},
			{"system/Observation.rs", []string{readP, vreadP, histP, searchP, postP}, []string{readO, searchO}},
			{"system/Patient.c", []string{readP, vreadP, histP, searchP, putP, delP}, []string{postP, putNew}},
			{"system/Patient.u", []string{putNew, postP, readP}, []string{putP}},
			{"system/Patient.read", []string{postP, putP, putNew, delP, delNone}, []string{readP, vreadP, histP, searchP}},
			{"system/Patient.write", []string{readP, searchP}, []string{putP}},
			{"system/Patient.cru", []string{delP, delNone}, []string{readP}},
			{"system/Patient.d", []string{readP, putP}, []string{delNone}},
			{"herald.admin", []string{readP, vreadP, histP, searchP, postP, putP, delP, readO}, nil},
			{"user/Patient.rs", []string{postP}, []string{readP, searchP}},
			{"openid fhirUser launch/patient", []string{readP, searchP, postP}, nil},
			{"", []string{readP, searchP, postP}, nil},
		}
		for i, c := range cases {
			tok := h.token(c.scope)
			// each case's update-as-create targets an id of its own
			fresh := strings.NewReplacer("/Patient/new", fmt.Sprintf("/Patient/new-%d", i))
			for _, req := range c.denied {
				method, path, _ := strings.Cut(fresh.Replace(req), " ")
				r := h.request(method, path, tok, bodyFor(method, path))
				require.Equal(t, 403, r.status, "%q: %s: %s", c.scope, req, r.body)
				requireOutcome(t, r, 403, "")
				require.Empty(t, r.header.Get("Location"))
			}
			for _, req := range c.allowed {
				method, path, _ := strings.Cut(fresh.Replace(req), " ")
				r := h.request(method, path, tok, bodyFor(method, path))
				require.Less(t, r.status, 300, "%q: %s: %s", c.scope, req, r.body)
			}
		}
		// only the allowed writes happened: Patient/p updated by .u and .write,
		// two POSTs (system/Patient.c), one PUT-create of Patient/new
		r := h.request("GET", "/fhir/Patient/p", all, "")
		require.Equal(t, 200, r.status)
		require.Equal(t, `W/"3"`, r.header.Get("ETag"))
		require.Equal(t, 3, h.count("Patient"))
	})
}

func bodyFor(method, path string) string {
	if method != "POST" && method != "PUT" {
		return ""
	}
	if id, ok := strings.CutPrefix(path, "/fhir/Patient/"); ok {
		return `{"resourceType":"Patient","id":"` + id + `"}`
	}
	return `{"resourceType":"Patient"}`
}

func obs(id, subject string) string {
	b := `{"resourceType":"Observation"`
	if id != "" {
		b += `,"id":"` + id + `"`
	}
	b += `,"status":"final","code":{"text":"x"}`
	if subject != "" {
		b += `,"subject":{"reference":"` + subject + `"}`
	}
	return b + "}"
}

// TestPatientScopedToken: a patient/ token with patient claim p1 works only
// inside p1's compartment: foreign resources are invisible (404), and no
// write may leave or enter another compartment (403, nothing stored).
func TestPatientScopedToken(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		for _, put := range []struct{ path, body string }{
			{"/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
			{"/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
			{"/fhir/Observation/o2", obs("o2", "Patient/p2")},
			{"/fhir/Observation/free", obs("free", "")},
		} {
			require.Equal(t, 201, h.request("PUT", put.path, all, put.body).status)
		}
		tok := h.token("patient/*.cruds", forPatient("p1"))

		// create and read in the compartment (relative and absolute references)
		r := h.request("POST", "/fhir/Observation", tok, obs("", "Patient/p1"))
		require.Equal(t, 201, r.status, string(r.body))
		mine := r.json(t)["id"].(string)
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/"+mine, tok, "").status)
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/"+mine+"/_history/1", tok, "").status)
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/"+mine+"/_history", tok, "").status)
		r = h.request("POST", "/fhir/Observation", tok, obs("", h.base+"/Patient/p1"))
		require.Equal(t, 201, r.status, string(r.body))
		mineAbs := r.json(t)["id"].(string)
		require.Equal(t, 200, h.request("GET", "/fhir/Patient/p1", tok, "").status)

		// no create outside the compartment
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, obs("", "Patient/p2")), 403, "compartment")
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, obs("", "")), 403, "compartment")
		requireOutcome(t, h.request("PUT", "/fhir/Observation/new-p2", tok, obs("new-p2", "Patient/p2")), 403, "")
		requireOutcome(t, h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`), 403, "")
		require.Equal(t, 4, h.count("Observation"), "o2, free and the two of p1")

		// another patient's resources do not exist for this token
		requireOutcome(t, h.request("GET", "/fhir/Observation/o2", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation/o2/_history/1", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation/o2/_history", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation/free", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Patient/p2", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Patient/p2/_history", tok, ""), 404, "")

		// search returns only p1's compartment, including via _id
		r = h.request("GET", "/fhir/Observation?_count=100", tok, "")
		require.Equal(t, 200, r.status)
		require.ElementsMatch(t, []string{mine, mineAbs}, entryIDs(t, r))
		r = h.request("GET", "/fhir/Observation?_id=o2,free,"+mine, tok, "")
		require.Equal(t, []string{mine}, entryIDs(t, r))
		r = h.request("GET", "/fhir/Patient", tok, "")
		require.Equal(t, []string{"p1"}, entryIDs(t, r))

		// moving a p1 resource into p2's compartment is refused and changes nothing
		requireOutcome(t, h.request("PUT", "/fhir/Observation/"+mine, tok, obs(mine, "Patient/p2")), 403, "compartment")
		requireOutcome(t, h.request("PUT", "/fhir/Observation/"+mine, tok, obs(mine, "")), 403, "compartment")
		r = h.request("GET", "/fhir/Observation/"+mine, all, "")
		require.Equal(t, `W/"1"`, r.header.Get("ETag"))
		require.Contains(t, string(r.body), `"Patient/p1"`)

		// taking over p2's resource is refused too, whatever the new content says
		requireOutcome(t, h.request("PUT", "/fhir/Observation/o2", tok, obs("o2", "Patient/p1")), 403, "")
		r = h.request("DELETE", "/fhir/Observation/o2", tok, "")
		require.Contains(t, []int{403, 404}, r.status, string(r.body))
		r = h.request("GET", "/fhir/Observation/o2", all, "")
		require.Equal(t, 200, r.status)
		require.Equal(t, `W/"1"`, r.header.Get("ETag"))
		require.Contains(t, string(r.body), `"Patient/p2"`)

		// nor through a transaction
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"POST","url":"Observation"},"resource":` + obs("", "Patient/p1") + `},
			{"request":{"method":"POST","url":"Observation"},"resource":` + obs("", "Patient/p2") + `}]}`
		requireOutcome(t, h.request("POST", "/fhir", tok, tx), 403, "entry 1")
		require.Equal(t, 4, h.count("Observation"))

		// the patient may delete what is theirs
		require.Equal(t, 204, h.request("DELETE", "/fhir/Observation/"+mine, tok, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Observation/"+mine, tok, ""), 410, "")
	})
}

// TestPatientScopedWriteCannotEnterAnotherCompartment: a resource whose
// compartment includes another patient must not be writable by a p1 token
// just because it also names p1. An extra "patient" element (which Herald
// once kept as an unknown element and counted for the compartment) is now
// not valid R4 (422); a subject in p2's compartment is a 403.
func TestPatientScopedWriteCannotEnterAnotherCompartment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token("patient/*.cruds", forPatient("p1"))
		body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"},"patient":{"reference":"Patient/p1"}}`
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, body), 422, "Observation.patient")
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, obs("", "Patient/p2")), 403, "compartment")
		require.Zero(t, h.count("Observation"))

		// and p2 must not find p1's writing in their compartment
		p2 := h.token("patient/*.rs", forPatient("p2"))
		r := h.request("GET", "/fhir/Observation", p2, "")
		require.Empty(t, entryIDs(t, r))
	})
}

// TestPatientScopesWithoutPatientClaimGrantNothing: patient/ scopes need the
// launch context; without it they fail closed.
func TestPatientScopesWithoutPatientClaimGrantNothing(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", all, `{"resourceType":"Patient","id":"p1"}`).status)
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/o1", all, obs("o1", "Patient/p1")).status)
		tok := h.token("patient/*.cruds patient/Observation.read")
		requireOutcome(t, h.request("GET", "/fhir/Patient/p1", tok, ""), 403, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation/o1", tok, ""), 403, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation", tok, ""), 403, "")
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, obs("", "Patient/p1")), 403, "")
		requireOutcome(t, h.request("DELETE", "/fhir/Observation/o1", tok, ""), 403, "")
		require.Equal(t, 1, h.count("Observation"))

		// a system/ scope next to it still works, unbounded
		tok = h.token("patient/*.cruds system/Observation.rs")
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/o1", tok, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Patient/p1", tok, ""), 403, "")
	})
}

// TestAuthorizationBeforePreconditions: RFC 9110 §13.2.1 — a request that
// would be refused without its If-Match must be refused the same way with
// it, so a caller without the right cannot probe versions or existence.
func TestAuthorizationBeforePreconditions(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p2", all, `{"resourceType":"Patient","id":"p2"}`).status)
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/o2", all, obs("o2", "Patient/p2")).status)
		stale := `If-Match: W/"9"`
		noRights := h.token("system/Encounter.cruds")
		requireOutcome(t, h.request("PUT", "/fhir/Patient/p2", noRights, `{"resourceType":"Patient","id":"p2"}`, stale), 403, "")
		requireOutcome(t, h.request("DELETE", "/fhir/Patient/p2", noRights, "", stale), 403, "")
		// a patient token learns nothing about another compartment from If-Match
		p1 := h.token("patient/*.cruds", forPatient("p1"))
		requireOutcome(t, h.request("PUT", "/fhir/Observation/o2", p1, obs("o2", "Patient/p1"), stale), 403, "")
		requireOutcome(t, h.request("DELETE", "/fhir/Observation/o2", p1, "", stale), 403, "")
	})
}
