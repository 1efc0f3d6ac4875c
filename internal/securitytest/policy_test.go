package securitytest

import (
	"net/http"
	"slices"
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
		// Counted after the delete: a failed handshake may have added a
		// version (status error) before it.
		versions := len(h.history("Subscription", "taken"))

		r := h.request("PUT", "/fhir/Subscription/taken", carol, body(hookBase+"carol"))
		requireOutcome(t, r, 403, "another owner")
		for _, path := range []string{"/fhir/Subscription/taken/_history", "/fhir/Subscription/taken/_history/1"} {
			r := h.request("GET", path, carol, "")
			require.Contains(t, []int{403, 404, 410}, r.status, "%s: %s", path, r.body)
			require.NotContains(t, string(r.body), "alice-secret-path")
		}
		require.Len(t, h.history("Subscription", "taken"), versions, "the refused PUT stored nothing")

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

// sentAfter is what the receiver got from request from on.
func sentAfter(h *harness, from int) []delivered { return h.recv.all()[from:] }

// carrying waits for a request whose body contains s.
func carrying(s string) func([]delivered) bool {
	return func(got []delivered) bool {
		return slices.ContainsFunc(got, func(d delivered) bool { return strings.Contains(string(d.Body), s) })
	}
}

// TestQueuedEventsReauthorisedWhenSentAndRead (finding 2): an unfiltered
// system Subscription queues p2's Encounter (its receiver refuses it); the
// admin narrows the client's ceiling to p1's Encounters and Herald switches
// the Subscription off. Re-PUT with a p1 filter, it is handshaken again
// but never sent p2's queued Encounter, nor does $events return it; once
// the client is suspended, $events answers 403.
func TestQueuedEventsReauthorisedWhenSentAndRead(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		admin, sys := h.token("herald.admin"), h.token("system/*.cruds")
		client := func(body string) {
			r := h.request("PUT", "/admin/clients/sys-app", admin, body, "Content-Type: application/json")
			require.Less(t, r.status, 300, string(r.body))
		}
		client(`{"status":"active","max_payload":"id-only"}`)
		tok := h.token("system/Subscription.cruds system/Encounter.rs", asClient("sys-app"))
		unfiltered := func(m map[string]any) { delete(m, "_criteria") }
		id := created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(h.recv.srv.URL+"/sys", unfiltered)))
		h.waitStatus(id, "active")
		h.recv.setAnswer(func(_ int, d delivered) int {
			if strings.Contains(string(d.Body), "Encounter/e2") {
				return 503
			}
			return 200
		})
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e2", sys, encounter("e2", "p2", `,"reasonCode":[{"text":"`+p2Marker+`"}]`)).status)
		h.recv.waitFor(t, "an attempt with p2's Encounter", carrying("Encounter/e2"))

		client(`{"status":"active","max_payload":"id-only","scope_ceiling":"system/Subscription.cruds system/Encounter.rs?patient=Patient/p1"}`)
		h.waitStatus(id, "off")
		h.recv.setAnswer(nil)
		from := len(h.recv.all())
		r := h.request("PUT", "/fhir/Subscription/"+id, tok, subscriptionJSON(h.recv.srv.URL+"/sys", func(m map[string]any) { m["id"] = id }))
		require.Equal(t, 200, r.status, string(r.body))
		h.waitStatus(id, "active")
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", sys, encounter("e1", "p1", "")).status)
		h.recv.waitFor(t, "p1's Encounter", carrying("Encounter/e1"))
		for _, d := range sentAfter(h, from) {
			require.NotContains(t, string(d.Body), "Encounter/e2")
			require.NotContains(t, string(d.Body), p2Marker)
		}

		r = h.request("GET", "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=1", tok, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), "Encounter/e1")
		require.NotContains(t, string(r.body), "Encounter/e2")

		client(`{"status":"suspended","max_payload":"id-only"}`)
		r = h.request("GET", "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=1", tok, "")
		requireOutcome(t, r, 403, "suspended")
		require.NotContains(t, string(r.body), "Encounter/e1")
	})
}

// TestRedefinedSubscriptionGetsNoOldEvents (finding 2): events queued for
// one endpoint are not delivered to the endpoint an update names instead,
// even where they pass the filters; events after the update are.
func TestRedefinedSubscriptionGetsNoOldEvents(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok, sys := h.token(subScope), h.token("system/*.cruds")
		id := created(t, h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(h.recv.srv.URL+"/old")))
		h.waitStatus(id, "active")
		h.recv.setAnswer(func(_ int, d delivered) int {
			if d.Path == "/old" && strings.Contains(string(d.Body), "Encounter/") {
				return 503
			}
			return 200
		})
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/queued", sys, encounter("queued", "p1", "")).status)
		h.recv.waitFor(t, "an attempt at the old endpoint", carrying("Encounter/queued"))

		r := h.request("PUT", "/fhir/Subscription/"+id, tok, subscriptionJSON(h.recv.srv.URL+"/new", func(m map[string]any) { m["id"] = id }))
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/later", sys, encounter("later", "p1", "")).status)
		got := h.recv.waitFor(t, "the later event at the new endpoint", carrying("Encounter/later"))
		for _, d := range got {
			if d.Path == "/new" {
				require.NotContains(t, string(d.Body), "Encounter/queued")
			}
		}
	})
}
