package api_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/memory"
)

// TestBundleAtBaseWithTrailingSlash: POST /fhir/ is POST /fhir, as clients
// that append "/" to the base (fhir-kit-client) send batches there.
func TestBundleAtBaseWithTrailingSlash(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		body := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}]}`
		r := h.request("POST", "/fhir/", tok, body)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, "batch-response", r.json(t)["type"])
		require.Equal(t, 1, h.count("Patient"))
	})
}

// TestSMARTConfigurationIsPublic: the document needs no token; without
// configuration it is a 404 OperationOutcome (never a 401), with it the
// configured endpoints, Herald's own capabilities and the scopes it grants by.
func TestSMARTConfigurationIsPublic(t *testing.T) {
	t.Parallel()
	const path = "/fhir/.well-known/smart-configuration"
	h := setup(t, memory.New())
	requireOutcome(t, h.request("GET", path, "", ""), 404, "HERALD_SMART_TOKEN_ENDPOINT")
	requireOutcome(t, h.request("GET", path, "not-a-token", ""), 404, "not published")

	h = setup(t, memory.New(), func(o *api.Options, _ *resources.Config) {
		o.SMART = api.SMARTConfig{Issuer: "https://auth.example", TokenEndpoint: "https://auth.example/token",
			AuthorizationEndpoint: "https://auth.example/authorize", Capabilities: []string{"launch-standalone", "permission-v2"}}
	})
	r := h.request("GET", path, "", "", "Accept: application/json")
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	var doc struct {
		Issuer                        string   `json:"issuer"`
		AuthorizationEndpoint         string   `json:"authorization_endpoint"`
		TokenEndpoint                 string   `json:"token_endpoint"`
		GrantTypesSupported           []string `json:"grant_types_supported"`
		CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
		ScopesSupported               []string `json:"scopes_supported"`
		Capabilities                  []string `json:"capabilities"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	require.Equal(t, "https://auth.example", doc.Issuer)
	require.Equal(t, "https://auth.example/authorize", doc.AuthorizationEndpoint)
	require.Equal(t, "https://auth.example/token", doc.TokenEndpoint)
	require.ElementsMatch(t, []string{"client_credentials", "authorization_code"}, doc.GrantTypesSupported)
	require.Equal(t, []string{"S256"}, doc.CodeChallengeMethodsSupported)
	require.Equal(t, []string{"permission-v1", "permission-v2", "permission-patient", "permission-user", "launch-standalone"}, doc.Capabilities)
	for _, sc := range doc.ScopesSupported {
		_, err := auth.ParseScope(sc)
		require.NoError(t, err, "scopes_supported lists %q, which Herald does not grant by", sc)
	}
}

// TestDeletedSubscriptionReadsGone: a deleted Subscription reads 410 for
// its owner, like every other type, and stays unknown (404) to others.
func TestDeletedSubscriptionReadsGone(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		owner := h.token(allScopes)
		r := h.request("POST", "/fhir/Subscription", owner, newSubscription())
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		require.Equal(t, 204, h.request("DELETE", "/fhir/Subscription/"+id, owner, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id, owner, ""), 410, "deleted")
		other := h.token(allScopes, func(c *auth.MintClaims) { c.ClientID = "someone-else" })
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id, other, ""), 404, "")
	})
}
