package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
)

// TestEitherTopicCanonicalWorks: the CapabilityStatement advertises each
// topic versioned and bare; a Subscription with either as criteria is
// accepted and gets the topic's events.
func TestEitherTopicCanonicalWorks(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes)
		var ids []string
		for _, criteria := range []string{encounterStart, encounterStart + "|1.0.0"} {
			r := h.request("POST", "/fhir/Subscription", tok, newSubscription(func(m map[string]any) { m["criteria"] = criteria }))
			require.Equal(t, 201, r.status, string(r.body))
			ids = append(ids, r.json(t)["id"].(string))
		}
		publisher := h.token("system/Encounter.cru")
		enc := `{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", publisher, enc).status)
		for _, id := range ids {
			ev := h.request("GET", "/fhir/Subscription/"+id+"/$events", tok, "")
			require.Equal(t, 200, ev.status, string(ev.body))
			require.Contains(t, string(ev.body), `"name":"event-number","valueString":"1"`, "criteria %s", id)
			require.Contains(t, string(ev.body), "Encounter/e1")
		}
	})
}

// TestPayloadMediaTypes: application/fhir+json (with fhirVersion) and
// application/json are accepted and kept as written; XML and anything else
// is refused with a 422 that says Herald renders JSON only.
func TestPayloadMediaTypes(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes)
		withPayload := func(p string) func(map[string]any) {
			return func(m map[string]any) { channel(m)["payload"] = p }
		}
		for _, p := range []string{"application/fhir+json;fhirVersion=4.0", "application/json"} {
			r := h.request("POST", "/fhir/Subscription", tok, newSubscription(withPayload(p)))
			require.Equal(t, 201, r.status, string(r.body))
			st, err := h.store.Subscription(h.t.Context(), r.json(t)["id"].(string))
			require.NoError(t, err)
			require.Equal(t, p, st.Payload)
		}
		requireOutcome(t, h.request("POST", "/fhir/Subscription", tok, newSubscription(withPayload("application/fhir+xml"))), 422, "JSON only")
		requireOutcome(t, h.request("POST", "/fhir/Subscription", tok, newSubscription(withPayload("text/plain"))), 422, "application/json")
	})
}

// TestStatusErrorIsCoded: $status reports Subscription.error as an error
// parameter with its subscription-error coding and the text.
func TestStatusErrorIsCoded(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes)
		r := h.request("POST", "/fhir/Subscription", tok, newSubscription())
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		ctx := h.t.Context()
		require.NoError(t, h.store.InTx(ctx, func(tx store.Tx) error {
			return subscription.SetStatus(ctx, tx, id, fhir.StatusError, "the handshake failed (timeout); retrying", fhir.SubscriptionErrorNoResponse, time.Now())
		}))
		st := h.request("GET", "/fhir/Subscription/"+id+"/$status", tok, "")
		require.Equal(t, 200, st.status, string(st.body))
		want := `{"name":"error","valueCodeableConcept":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscription-error","code":"no-response"}],"text":"the handshake failed (timeout); retrying"}}`
		require.True(t, strings.Contains(compactJSON(t, st.body), want), compactJSON(t, st.body))
	})
}

// TestEventsShowEventTimeIncludes: $events shows the focus and the
// notificationShape includes at the versions the event saw, not the ones
// written since.
func TestEventsShowEventTimeIncludes(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := fullResourceOwner(t, h)
		r := h.request("POST", "/fhir/Subscription", tok, newSubscription(withContent("full-resource")))
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)

		publisher := h.token("system/Encounter.cru system/Patient.cru")
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", publisher, `{"resourceType":"Patient","id":"p1","birthDate":"1970-01-01"}`).status)
		enc := `{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", publisher, enc).status)
		// After the event: the Patient changes.
		require.Equal(t, 200, h.request("PUT", "/fhir/Patient/p1", publisher, `{"resourceType":"Patient","id":"p1","birthDate":"1980-02-02"}`).status)

		ev := h.request("GET", "/fhir/Subscription/"+id+"/$events", tok, "")
		require.Equal(t, 200, ev.status, string(ev.body))
		body := compactJSON(t, ev.body)
		require.Contains(t, body, `"birthDate":"1970-01-01"`, "the Patient as the event saw it")
		require.NotContains(t, body, `"birthDate":"1980-02-02"`, "not as it is now")
		require.Contains(t, body, `"etag":"W/\"1\""`)

		// id-only names the same version.
		ev = h.request("GET", "/fhir/Subscription/"+id+"/$events?content=id-only", tok, "")
		require.Equal(t, 200, ev.status)
		require.NotContains(t, string(ev.body), `"birthDate"`)
		require.NotContains(t, compactJSON(t, ev.body), `"etag":"W/\"2\""`, "no entry names the Patient's later version")
	})
}

// fullResourceOwner registers client "full" with a full-resource ceiling
// and returns its token, with read access to encounter-start's includes.
func fullResourceOwner(t *testing.T, h *subHarness) string {
	t.Helper()
	_, err := h.store.PutClient(h.t.Context(), storeClient("full", "full-resource"))
	require.NoError(t, err)
	return h.token("system/Subscription.cruds system/Encounter.rs system/Patient.rs system/Practitioner.rs system/Location.rs system/Organization.rs system/Group.rs",
		func(c *auth.MintClaims) { c.ClientID = "full" })
}
