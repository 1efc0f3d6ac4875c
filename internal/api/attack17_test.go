package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

// TestTopicChangesAreAudited: topics are written by admins only and decide
// what every subscriber of them is sent (triggers, notificationShape
// includes); their changes belong in the admin audit log like the
// allow-list's and the registry's. Before, a topic created, changed or
// deleted through /fhir/SubscriptionTopic left no entry.
func TestTopicChangesAreAudited(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		admin := h.token(auth.AdminScope, func(c *auth.MintClaims) { c.ClientID = "ops-bob" })
		custom := `{"resourceType":"SubscriptionTopic","id":"flu-shot","url":"https://example.org/topics/flu-shot","status":"active",
		 "resourceTrigger":[{"resource":"Immunization","supportedInteraction":["create"],"queryCriteria":{"current":"status=completed"}}],
		 "canFilterBy":[{"resource":"Immunization","filterParameter":"patient"}]}`
		r := h.request("PUT", "/fhir/SubscriptionTopic/flu-shot", admin, custom)
		require.Equal(t, 201, r.status, string(r.body))
		r = h.request("PUT", "/fhir/SubscriptionTopic/flu-shot", admin, `{"resourceType":"SubscriptionTopic","id":"flu-shot","url":"https://example.org/topics/flu-shot","status":"retired",
		 "resourceTrigger":[{"resource":"Immunization","supportedInteraction":["create"],"queryCriteria":{"current":"status=completed"}}],
		 "canFilterBy":[{"resource":"Immunization","filterParameter":"patient"}]}`)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 204, h.request("DELETE", "/fhir/SubscriptionTopic/flu-shot", admin, "").status)

		var log []auditBody
		requireJSON(t, h.adminRequest("GET", "/admin/audit", admin, ""), 200, &log)
		var actions []string
		var topics []auditBody
		for _, e := range log {
			if strings.HasPrefix(e.Action, "topic.") {
				topics = append(topics, e)
				actions = append(actions, e.Actor+" "+e.Action+" "+e.Target)
			}
		}
		log = topics
		require.Equal(t, []string{"ops-bob topic.delete SubscriptionTopic/flu-shot", "ops-bob topic.put SubscriptionTopic/flu-shot", "ops-bob topic.put SubscriptionTopic/flu-shot"}, actions, "newest first")
		require.JSONEq(t, `null`, string(log[2].Before))
		require.Contains(t, string(log[2].After), `"status":"active"`)
		require.Contains(t, string(log[1].Before), `"status":"active"`)
		require.Contains(t, string(log[1].After), `"status":"retired"`)
		require.Contains(t, string(log[0].Before), `"status":"retired"`)
		require.JSONEq(t, `null`, string(log[0].After))
	})
}
