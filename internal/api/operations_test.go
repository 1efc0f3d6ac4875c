package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
)

// statusParams extracts name → value of the status Parameters in a Bundle entry.
func statusParams(t *testing.T, entry map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range entry["resource"].(map[string]any)["parameter"].([]any) {
		pm := p.(map[string]any)
		for k, v := range pm {
			if strings.HasPrefix(k, "value") {
				if s, ok := v.(string); ok {
					out[pm["name"].(string)] = s
				}
			}
		}
	}
	return out
}

func TestStatusAndEventsOperations(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		alice, bob, id, bobID := twoOwners(t, h)
		publisher := h.token("system/Encounter.cru")

		// Three writes fire encounter-start for Patient/p1.
		for i := 1; i <= 3; i++ {
			body := fmt.Sprintf(`{"resourceType":"Encounter","id":"e%d","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"length":{"value":1.50}}`, i)
			require.Equal(t, 201, h.request("PUT", fmt.Sprintf("/fhir/Encounter/e%d", i), publisher, body).status)
		}

		// $status, instance level (GET and POST).
		for _, method := range []string{"GET", "POST"} {
			st := h.request(method, "/fhir/Subscription/"+id+"/$status", alice, "")
			require.Equal(t, 200, st.status, string(st.body))
			fhirtest.RequireValidR4(t, st.body)
			b := st.json(t)
			require.Equal(t, "searchset", b["type"])
			entries := b["entry"].([]any)
			require.Len(t, entries, 1)
			ps := statusParams(t, entries[0].(map[string]any))
			require.Equal(t, "query-status", ps["type"])
			require.Equal(t, "requested", ps["status"])
			require.Equal(t, "3", ps["events-since-subscription-start"])
		}

		// $status, type level: only the caller's own, narrowed by status.
		st := h.request("GET", "/fhir/Subscription/$status", alice, "")
		require.Equal(t, 200, st.status, string(st.body))
		require.Len(t, st.json(t)["entry"].([]any), 1)
		require.NotContains(t, string(st.body), bobID)
		st = h.request("POST", "/fhir/Subscription/$status", alice, `{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"active"}]}`)
		require.Equal(t, 200, st.status, string(st.body))
		require.Nil(t, st.json(t)["entry"])
		admin := h.request("GET", "/fhir/Subscription/$status", h.token("herald.admin"), "")
		require.Len(t, admin.json(t)["entry"].([]any), 2)

		// $events: a range, as a query-event notification Bundle.
		ev := h.request("GET", "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=2&eventsUntilNumber=3", alice, "")
		require.Equal(t, 200, ev.status, string(ev.body))
		fhirtest.RequireValidR4(t, ev.body)
		b := ev.json(t)
		require.Equal(t, "history", b["type"])
		entries := b["entry"].([]any)
		ps := statusParams(t, entries[0].(map[string]any))
		require.Equal(t, "query-event", ps["type"])
		require.Contains(t, string(ev.body), `"valueString":"2"`)
		require.Contains(t, string(ev.body), `"valueString":"3"`)
		require.Contains(t, string(ev.body), "Encounter/e2")
		require.NotContains(t, string(ev.body), "Encounter/e1\"", "event 1 is outside the range")
		for _, e := range entries[1:] {
			require.Nil(t, e.(map[string]any)["resource"], "id-only entries carry no resource")
		}

		// Asking for full resources cannot exceed the Subscription's id-only.
		ev = h.request("GET", "/fhir/Subscription/"+id+"/$events?content=full-resource", alice, "")
		require.Equal(t, 200, ev.status)
		require.NotContains(t, string(ev.body), `"length"`)
		var parsed map[string]any
		require.NoError(t, json.Unmarshal(ev.body, &parsed))

		// Others see nothing; bad input is 400; unknown operations 404.
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$status", bob, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$events", bob, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=x", alice, ""), 400, "eventsSinceNumber")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$resend", alice, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Patient/$status", alice, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/$status", h.token("system/Encounter.rs"), ""), 403, "")

		// The CapabilityStatement declares both operations.
		md := h.request("GET", "/fhir/metadata", "", "")
		require.Contains(t, string(md.body), `"name":"status","definition":"http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"`)
		require.Contains(t, string(md.body), `"name":"events"`)
	})
}

// TestEventsIncludeNotificationShape: full-resource $events carries the focus
// as stored at the version that fired, and the topic's includes the caller
// may read.
func TestEventsIncludeNotificationShape(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := fullResourceOwner(t, h)
		r := h.request("POST", "/fhir/Subscription", tok, newSubscription(withContent("full-resource")))
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)

		publisher := h.token("system/Encounter.cru system/Patient.cru")
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", publisher, `{"resourceType":"Patient","id":"p1","birthDate":"1970-01-01"}`).status)
		enc := `{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"length":{"value":1.50}}`
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", publisher, enc).status)
		// A later version must not leak into the event of version 1.
		require.Equal(t, 200, h.request("PUT", "/fhir/Encounter/e1", publisher, strings.Replace(enc, `1.50`, `2.50`, 1)).status)

		ev := h.request("GET", "/fhir/Subscription/"+id+"/$events", tok, "")
		require.Equal(t, 200, ev.status, string(ev.body))
		fhirtest.RequireValidR4(t, ev.body)
		require.Contains(t, string(ev.body), `"length":{"value":1.50}`, "the focus as stored at the version that fired")
		require.NotContains(t, string(ev.body), `"value":2.50`, "not the later version")
		require.Contains(t, string(ev.body), `"birthDate":"1970-01-01"`, "the notificationShape include Encounter:patient")
		require.Contains(t, string(ev.body), `"name":"additional-context"`)

		// Asked for id-only, the same events carry references only.
		ev = h.request("GET", "/fhir/Subscription/"+id+"/$events?content=id-only", tok, "")
		require.Equal(t, 200, ev.status)
		require.NotContains(t, string(ev.body), `"birthDate"`)
		require.Contains(t, string(ev.body), `Patient/p1`)
	})
}
