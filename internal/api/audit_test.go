package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

type auditBody struct {
	Seq    int64           `json:"seq"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// Finding 12: admin changes leave an append-only record (who, when, what,
// before and after) that admins, and only admins, can read.
func TestAdminChangesAreAudited(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		admin := h.token(auth.AdminScope, func(c *auth.MintClaims) { c.ClientID = "ops-alice" })
		start := time.Now().Add(-time.Second)
		var ep endpointBody
		requireJSON(t, h.adminRequest("POST", "/admin/endpoints", admin, `{"url_prefix":"https://hooks.example.org/a/"}`), 201, &ep)
		r := h.adminRequest("PUT", "/admin/clients/app-1", admin, `{"status":"active","max_payload":"id-only"}`)
		require.Equal(t, 201, r.status, string(r.body))
		r = h.adminRequest("PUT", "/admin/clients/app-1", admin, `{"status":"suspended","max_payload":"id-only"}`)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 204, h.adminRequest("DELETE", "/admin/endpoints/"+ep.ID, admin, "").status)
		require.Equal(t, 422, h.adminRequest("PUT", "/admin/clients/app-1", admin, `{"status":"on","max_payload":"id-only"}`).status)

		var log []auditBody
		requireJSON(t, h.adminRequest("GET", "/admin/audit", admin, ""), 200, &log)
		require.Len(t, log, 4, "one entry per change; refused changes leave none")
		actions := []string{}
		for _, e := range log {
			require.Equal(t, "ops-alice", e.Actor)
			require.WithinRange(t, e.At, start, time.Now().Add(time.Second))
			actions = append(actions, e.Action+" "+e.Target)
		}
		require.Equal(t, []string{"endpoint.remove " + ep.ID, "client.put app-1", "client.put app-1", "endpoint.add " + ep.ID}, actions, "newest first")
		require.JSONEq(t, `null`, string(log[3].Before))
		require.Contains(t, string(log[3].After), `"url_prefix":"https://hooks.example.org/a/"`)
		require.Contains(t, string(log[1].Before), `"status":"active"`)
		require.Contains(t, string(log[1].After), `"status":"suspended"`)
		require.JSONEq(t, `null`, string(log[0].After))

		var page []auditBody
		requireJSON(t, h.adminRequest("GET", "/admin/audit?limit=2", admin, ""), 200, &page)
		require.Len(t, page, 2)
		var rest []auditBody
		requireJSON(t, h.adminRequest("GET", "/admin/audit?before="+itoa(page[1].Seq), admin, ""), 200, &rest)
		require.Equal(t, log[2:], rest, "paged by seq")

		requireOutcome(t, h.adminRequest("GET", "/admin/audit", h.token(allScopes), ""), 403, "herald.admin")
		requireOutcome(t, h.adminRequest("GET", "/admin/audit?limit=x", admin, ""), 400, "limit")
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
