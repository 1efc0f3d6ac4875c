package securitytest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/webhook"
)

// The tests of this file are the findings of issue 12 ("one authorization
// policy"), each reproduced through real HTTP on both stores.

func asUser(fhirUser string) func(*auth.MintClaims) {
	return func(c *auth.MintClaims) { c.Subject, c.FHIRUser = fhirUser, fhirUser }
}

// foreignAttempts are the requests another owner must not get through with
// on Subscription id: every one is answered 403 or 404.
func foreignAttempts(id, stolenPUT string) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{"GET", "/fhir/Subscription/" + id, ""},
		{"GET", "/fhir/Subscription/" + id + "/_history", ""},
		{"GET", "/fhir/Subscription/" + id + "/$status", ""},
		{"GET", "/fhir/Subscription/" + id + "/$events", ""},
		{"PUT", "/fhir/Subscription/" + id, stolenPUT},
		{"DELETE", "/fhir/Subscription/" + id, ""},
	}
}

// requireInvisible asserts that tok neither reaches Subscription id nor
// finds it by search or $status.
func requireInvisible(t *testing.T, h *harness, tok, id, stolenPUT string) {
	t.Helper()
	for _, req := range foreignAttempts(id, stolenPUT) {
		r := h.request(req.method, req.path, tok, req.body)
		require.Contains(t, []int{403, 404}, r.status, "%s %s: %s", req.method, req.path, r.body)
		requireOutcome(t, r, r.status, "")
	}
	require.Equal(t, []string{}, entryIDs(t, h.request("GET", "/fhir/Subscription", tok, "")))
	require.Equal(t, []string{}, entryIDs(t, h.request("GET", "/fhir/Subscription?_id="+id, tok, "")))
	r := h.request("GET", "/fhir/Subscription/$status", tok, "")
	require.Equal(t, 200, r.status, string(r.body))
	require.NotContains(t, string(r.body), id)
}

// TestPatientContextsDoNotShareSubscriptions (finding 1): two tokens of one
// SMART app (one client id) launched for p1 and for p2. The p2 token does
// not see, query, update or delete p1's Subscription; its PUT with its own
// endpoint and "X-Key: [redacted]" does not obtain p1's stored header
// value, which keeps going to p1's endpoint only. A system token of the
// same client does not see it either: ownership is (client, context).
func TestPatientContextsDoNotShareSubscriptions(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const scope = "patient/Encounter.rs patient/Subscription.cruds"
		p1 := h.token(scope, forPatient("p1"), asClient("patient-app"))
		p2 := h.token(scope, forPatient("p2"), asClient("patient-app"))
		h.hide("p1-receiver-credential")
		id := created(t, h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(h.recv.srv.URL+"/p1",
			withHeaders("X-Key: p1-receiver-credential"))))

		stolen := subscriptionJSON(h.recv.srv.URL+"/p2", withFilter("Encounter?patient=Patient/p2"),
			withHeaders("X-Key: [redacted]"), func(m map[string]any) { m["id"] = id })
		requireInvisible(t, h, p2, id, stolen)
		sys := h.token("system/Subscription.cruds system/Encounter.rs", asClient("patient-app"))
		requireInvisible(t, h, sys, id, stolen)

		st := h.state(id)
		require.Equal(t, h.recv.srv.URL+"/p1", st.Endpoint)
		require.Equal(t, []string{"Encounter?patient=Patient/p1"}, st.Filters)

		// The owner still has it, and its receiver alone gets the credential.
		require.Equal(t, []string{id}, entryIDs(t, h.request("GET", "/fhir/Subscription", p1, "")))
		h.waitStatus(id, "active")
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", h.token("system/*.cruds"), encounter("e1", "p1", "")).status)
		got := h.recv.waitFor(t, "p1's event", func(got []delivered) bool {
			for _, d := range got {
				if strings.Contains(string(d.Body), "Encounter/e1") {
					return true
				}
			}
			return false
		})
		for _, d := range got {
			require.Equal(t, "/p1", d.Path)
			require.Equal(t, "p1-receiver-credential", d.Header.Get("X-Key"))
		}
	})
}

// TestUserContextsDoNotShareSubscriptions (finding 1): user/ tokens of one
// client for two users (fhirUser) own their Subscriptions separately.
func TestUserContextsDoNotShareSubscriptions(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const scope = "user/Encounter.rs user/Subscription.cruds"
		alice := h.token(scope, asClient("portal"), asUser("Practitioner/alice"))
		bob := h.token(scope, asClient("portal"), asUser("Practitioner/bob"))
		id := created(t, h.request("POST", "/fhir/Subscription", alice, subscriptionJSON(hookBase+"alice")))
		requireInvisible(t, h, bob, id, subscriptionJSON(hookBase+"bob", func(m map[string]any) { m["id"] = id }))
		require.Equal(t, []string{id}, entryIDs(t, h.request("GET", "/fhir/Subscription", alice, "")))
		require.Equal(t, hookBase+"alice", h.state(id).Endpoint)
	})
}

// TestRedactedHeaderKeptOnlyForTheSameEndpoint (finding 1): an update that
// sends a header value back as [redacted] keeps the stored value only when
// the endpoint is unchanged; a new endpoint must be sent the value again.
func TestRedactedHeaderKeptOnlyForTheSameEndpoint(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(subScope)
		h.hide("stored-credential")
		id := created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"a", withHeaders("X-Key: stored-credential"))))
		withID := func(m map[string]any) { m["id"] = id }

		r := h.request("PUT", "/fhir/Subscription/"+id, tok, subscriptionJSON(hookBase+"b", withHeaders("X-Key: [redacted]"), withID))
		requireOutcome(t, r, 422, "Subscription.channel.header")
		require.Equal(t, hookBase+"a", h.state(id).Endpoint)

		r = h.request("PUT", "/fhir/Subscription/"+id, tok, subscriptionJSON(hookBase+"a", withHeaders("X-Key: [redacted]"), withID))
		require.Equal(t, 200, r.status, string(r.body))
		r = h.request("PUT", "/fhir/Subscription/"+id, tok, subscriptionJSON(hookBase+"b", withHeaders("X-Key: new-credential"), withID))
		require.Equal(t, 200, r.status, string(r.body))
	})
}

// TestDeletedSubscriptionIDStaysWithItsOwner (finding 3): after its owner
// deleted Subscription/taken, another client's PUT on that id is refused
// and cannot read the old versions; the owner may use the id again.
func TestDeletedSubscriptionIDStaysWithItsOwner(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		alice := h.token(subScope, asClient("alice"))
		carol := h.token(subScope, asClient("carol"))
		body := func(endpoint string) string {
			return subscriptionJSON(endpoint, func(m map[string]any) { m["id"] = "taken" })
		}
		require.Equal(t, 201, h.request("PUT", "/fhir/Subscription/taken", alice, body(hookBase+"alice-secret-path")).status)
		require.Less(t, h.request("DELETE", "/fhir/Subscription/taken", alice, "").status, 300)

		r := h.request("PUT", "/fhir/Subscription/taken", carol, body(hookBase+"carol"))
		requireOutcome(t, r, 403, "another owner")
		for _, path := range []string{"/fhir/Subscription/taken/_history", "/fhir/Subscription/taken/_history/1"} {
			r := h.request("GET", path, carol, "")
			require.Contains(t, []int{403, 404, 410}, r.status, "%s: %s", path, r.body)
			require.NotContains(t, string(r.body), "alice-secret-path")
		}
		require.Len(t, h.history("Subscription", "taken"), 2, "the refused PUT stored nothing")

		require.Equal(t, 201, h.request("PUT", "/fhir/Subscription/taken", alice, body(hookBase+"alice")).status)
	})
}

// TestOneReservedHeaderList (finding 6): every header the webhook client
// reserves for itself is refused when a Subscription is created, so no
// stored header is silently dropped at send (Accept was).
func TestOneReservedHeaderList(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(subScope)
		names := append(webhook.ReservedHeaders(), "Proxy-Anything", "Sec-Anything")
		require.Contains(t, names, "Accept")
		for _, name := range names {
			r := h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"h", withHeaders(name+": x")))
			requireOutcome(t, r, 422, "Subscription.channel.header")
		}
		require.Empty(t, h.states())
	})
}

// TestFilterAndSubscriptionLimits (finding 4): at most 20 parameters in a
// filter and 20 filters (422), and at most the configured number of live
// Subscriptions per client (429); deleting one makes room again.
func TestFilterAndSubscriptionLimits(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(subScope)
		params := func(n int) string {
			return "Encounter?patient=Patient/p1" + strings.Repeat("&class=AMB", n-1)
		}
		id := created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"ok", withFilter(params(20)))))
		r := h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"x", withFilter(params(21))))
		requireOutcome(t, r, 422, "at most 20 parameters")
		r = h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"x", withFilter("Encounter?"+strings.Repeat("&class=AMB", 19000)[1:])))
		requireOutcome(t, r, 422, "at most 20 parameters")
		r = h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"x", func(m map[string]any) {
			var exts []any
			for range 21 {
				exts = append(exts, map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"})
			}
			m["_criteria"] = map[string]any{"extension": exts}
		}))
		requireOutcome(t, r, 422, "at most 20 filters")

		// The harness allows 3 live Subscriptions per client.
		created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"2")))
		created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"3")))
		r = h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"4"))
		requireOutcome(t, r, http.StatusTooManyRequests, "at most 3")
		other := h.token(subScope, asClient("other"))
		created(t, h.request("POST", "/fhir/Subscription", other, subscriptionJSON(hookBase+"other")))
		require.Less(t, h.request("DELETE", "/fhir/Subscription/"+id, tok, "").status, 300)
		created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"4")))
	}, maxSubscriptions(3))
}
