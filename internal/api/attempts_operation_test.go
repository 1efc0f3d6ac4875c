package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/r4"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// requireR4 checks body with Herald's own R4 validator and, independently,
// google/fhir's.
func requireR4(t *testing.T, body []byte) {
	t.Helper()
	root, err := strictjson.Parse(body)
	require.NoError(t, err)
	require.Empty(t, r4.Validate(root), "internal/r4")
	fhirtest.RequireValidR4(t, body)
}

// auditEntries are the AuditEvents of a $attempts Bundle.
func auditEntries(t *testing.T, r response) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range r.json(t)["entry"].([]any) {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func nextLink(t *testing.T, r response) string {
	t.Helper()
	for _, l := range r.json(t)["link"].([]any) {
		if l := l.(map[string]any); l["relation"] == "next" {
			return l["url"].(string)
		}
	}
	return ""
}

func TestAttemptsOperation(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		alice, bob, id, _ := twoOwners(t, h)
		failed := failure("http-status", 503)
		failed.Kind, failed.FirstEvent, failed.LastEvent, failed.ResponseBody, failed.ResponseBytes = "event-notification", 4, 6, "try later \uFFFD", 14
		logAttempt(t, h.store, id, failed)
		logAttempt(t, h.store, id, store.Attempt{At: time.Now(), Instance: "host-2", Channel: "rest-hook", Kind: "heartbeat",
			Outcome: store.AttemptSuccess, StatusCode: 204, Latency: 2 * time.Millisecond})

		r := h.request("GET", "/fhir/Subscription/"+id+"/$attempts", alice, "")
		require.Equal(t, 200, r.status, string(r.body))
		requireR4(t, r.body)
		require.Equal(t, "searchset", r.json(t)["type"])
		evs := auditEntries(t, r)
		require.Len(t, evs, 2)
		require.Equal(t, "AuditEvent", evs[0]["resourceType"])
		require.Equal(t, "0", evs[0]["outcome"], "newest first: the heartbeat")
		require.Equal(t, "heartbeat", evs[0]["subtype"].([]any)[0].(map[string]any)["code"])
		require.Equal(t, "host-2", evs[0]["source"].(map[string]any)["site"])
		require.Equal(t, "4", evs[1]["outcome"])
		require.Equal(t, "http-status (HTTP 503)", evs[1]["outcomeDesc"])
		entity := evs[1]["entity"].([]any)[0].(map[string]any)
		require.Equal(t, "Subscription/"+id, entity["what"].(map[string]any)["reference"])
		details := map[string]any{}
		for _, d := range entity["detail"].([]any) {
			d := d.(map[string]any)
			details[d["type"].(string)] = d["valueString"]
			if d["valueString"] == nil {
				details[d["type"].(string)] = d["valueBase64Binary"]
			}
		}
		require.Equal(t, "4", details["first-event"])
		require.Equal(t, "6", details["last-event"])
		require.Equal(t, "503", details["http-status"])
		require.Equal(t, "dHJ5IGxhdGVyIO+/vQ==", details["response-body"], "the body prefix, base64")

		// Paging and filtering.
		r = h.request("GET", "/fhir/Subscription/"+id+"/$attempts?_count=1", alice, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Len(t, auditEntries(t, r), 1)
		next := nextLink(t, r)
		require.NotEmpty(t, next)
		r = h.request("GET", strings.TrimPrefix(next, h.srv.URL), alice, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, "4", auditEntries(t, r)[0]["outcome"], "the older attempt")
		require.Empty(t, nextLink(t, r))
		r = h.request("POST", "/fhir/Subscription/"+id+"/$attempts", alice, `{"resourceType":"Parameters","parameter":[{"name":"outcome","valueCode":"success"}]}`)
		require.Equal(t, 200, r.status, string(r.body))
		require.Len(t, auditEntries(t, r), 1)
		requireR4(t, r.body)

		// The owner rules of $events: others, admins included, see no such Subscription.
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$attempts", bob, ""), 404, id)
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$attempts", h.adminToken(), ""), 404, id)
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$attempts?outcome=maybe", alice, ""), 400, "outcome")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/$attempts?_count=101", alice, ""), 400, "_count")

		md := h.request("GET", "/fhir/metadata", "", "")
		require.Contains(t, string(md.body), `"name":"attempts","definition":"https://herald.dev/fhir/OperationDefinition/Subscription-attempts"`)
	})
}
