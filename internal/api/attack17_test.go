package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/heaptest"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
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

// TestAdminSubscriptionChangesAreAudited: an admin may change or delete any
// owner's Subscription through /fhir (keeping the owner's grants); such a
// change is an admin change and is audited (subscription.put,
// subscription.delete) with the stored Subscription before and after,
// which never holds the signing secret or header values. An owner's own
// changes are not admin changes. Before, neither left an entry.
func TestAdminSubscriptionChangesAreAudited(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		owner := h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "app" })
		admin := h.token("herald.admin system/Subscription.cruds", func(c *auth.MintClaims) { c.ClientID = "ops-carol" })
		r := h.request("POST", "/fhir/Subscription", owner, newSubscription(withSecrets))
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		read := h.request("GET", "/fhir/Subscription/"+id, owner, "")
		require.Equal(t, 200, read.status)
		r = h.request("PUT", "/fhir/Subscription/"+id, owner, strings.Replace(string(read.body), "Tell the care app", "Owner: tell the care app", 1))
		require.Equal(t, 200, r.status, string(r.body))

		read = h.request("GET", "/fhir/Subscription/"+id, admin, "")
		require.Equal(t, 200, read.status)
		r = h.request("PUT", "/fhir/Subscription/"+id, admin, strings.Replace(string(read.body), "Owner: tell the care app", "Admin: tell the care app", 1))
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 204, h.request("DELETE", "/fhir/Subscription/"+id, admin, "").status)

		var log []auditBody
		requireJSON(t, h.adminRequest("GET", "/admin/audit", admin, ""), 200, &log)
		var subs []auditBody
		var actions []string
		for _, e := range log {
			if strings.HasPrefix(e.Target, "Subscription/") {
				subs = append(subs, e)
				actions = append(actions, e.Actor+" "+e.Action+" "+e.Target)
			}
		}
		require.Equal(t, []string{"ops-carol subscription.delete Subscription/" + id, "ops-carol subscription.put Subscription/" + id}, actions, "newest first; the owner's own update is not an admin change")
		require.Contains(t, string(subs[1].Before), "Owner: tell the care app")
		require.Contains(t, string(subs[1].After), "Admin: tell the care app")
		require.Contains(t, string(subs[0].Before), "Admin: tell the care app")
		require.JSONEq(t, `null`, string(subs[0].After))
		for _, e := range subs {
			for _, secret := range []string{subSecret, headerSecret, "hdr-s3cr3t"} {
				require.NotContains(t, string(e.Before)+string(e.After), secret, "the audit log never holds secrets")
			}
		}
	})
}

// TestAdminEditKeepsOwnerOfSameClient: an admin's edit keeps the owner (and
// so the owner's grants and lease cap) whenever the admin is not the
// owner: the same client in another launch context is another owner.
// Before, only the client id was compared, so an admin token of the
// client that owns a patient-context Subscription took it over as a
// system owner: its lease grew from the patient token's hour to
// HERALD_MAX_LEASE, and the patient's own token no longer found it.
func TestAdminEditKeepsOwnerOfSameClient(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		patient := h.token("patient/Subscription.cru patient/Encounter.rs", forPatient("p1"), func(c *auth.MintClaims) {
			c.ClientID, c.TTL = "app", time.Hour
		})
		admin := h.token("herald.admin system/Subscription.cruds system/Encounter.rs", func(c *auth.MintClaims) { c.ClientID = "app" })
		r := h.request("POST", "/fhir/Subscription", patient, newSubscription())
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)

		read := h.request("GET", "/fhir/Subscription/"+id, admin, "")
		require.Equal(t, 200, read.status)
		var m map[string]any
		require.NoError(t, json.Unmarshal(read.body, &m))
		m["end"] = "2099-01-01T00:00:00Z"
		body, _ := json.Marshal(m)
		r = h.request("PUT", "/fhir/Subscription/"+id, admin, string(body))
		require.Equal(t, 200, r.status, string(r.body))
		end, err := time.Parse(time.RFC3339, r.json(t)["end"].(string))
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(time.Hour), end, 5*time.Minute, "the owner's (patient token's) lease cap still holds")
		require.Equal(t, 200, h.request("GET", "/fhir/Subscription/"+id, patient, "").status, "still the patient owner's")
	})
}

// TestAdminCannotRedirectAnotherOwnersNotifications: herald.admin grants
// no FHIR access (finding 6), so an admin's edit of another owner's
// Subscription must not change what it delivers or where: its topic,
// filters or endpoint. Before, a token with herald.admin and
// system/Subscription.u alone (no read scope on anything) could point
// another owner's Subscription at an endpoint of its choosing and widen
// its filters, and receive, under the owner's grants, every patient's
// changes. Switching it off, its reason and its end stay the admin's to
// change.
func TestAdminCannotRedirectAnotherOwnersNotifications(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		owner := h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "app" })
		admin := h.token("herald.admin system/Subscription.rus", func(c *auth.MintClaims) { c.ClientID = "ops-dave" })
		r := h.request("POST", "/fhir/Subscription", owner, newSubscription())
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		read := h.request("GET", "/fhir/Subscription/"+id, admin, "")
		require.Equal(t, 200, read.status)

		for name, change := range map[string]func(m map[string]any){
			"endpoint": func(m map[string]any) { channel(m)["endpoint"] = hookBase + "admin-collects" },
			"filters": func(m map[string]any) {
				m["_criteria"] = map[string]any{"extension": []any{map[string]any{
					"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"}}}
			},
			"topic": func(m map[string]any) { m["criteria"] = "https://herald.dev/fhir/SubscriptionTopic/encounter-end" },
		} {
			var m map[string]any
			require.NoError(t, json.Unmarshal(read.body, &m))
			change(m)
			body, _ := json.Marshal(m)
			requireOutcome(t, h.request("PUT", "/fhir/Subscription/"+id, admin, string(body)), 403, "owner")
			t.Logf("%s: refused", name)
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(read.body, &m))
		m["reason"], m["status"] = "switched off by operations", "off"
		body, _ := json.Marshal(m)
		r = h.request("PUT", "/fhir/Subscription/"+id, admin, string(body))
		require.Equal(t, 200, r.status, string(r.body))
		got := h.request("GET", "/fhir/Subscription/"+id, owner, "").json(t)
		require.Equal(t, hookBase+"hook-1", got["channel"].(map[string]any)["endpoint"])
		require.Equal(t, "off", got["status"])
	})
}

// TestTypeStatusIsBounded: GET /Subscription/$status without ids answers
// every Subscription the caller may see, each costing a query and a
// status entry: all of them for an admin, and all of an owner's,
// including those switched off (the live-quota does not count them). One
// small request must not build an answer beyond HERALD_MAX_RESPONSE_BYTES
// (16 MiB): before, 20,000 Subscriptions switched off made a 12.6 MB
// answer (and 20,000 queries on PostgreSQL). Past
// subscription.MaxStatusEntries Herald refuses (413) and asks for ids.
func TestTypeStatusIsBounded(t *testing.T) {
	t.Parallel()
	const subs = 20000
	h := setupSubscriptions(t, memory.New())
	now := time.Now()
	require.NoError(t, h.store.InTx(context.Background(), func(tx store.Tx) error {
		for i := range subs {
			if err := tx.PutSubscription(context.Background(), store.SubscriptionState{ID: fmt.Sprintf("s%05d", i), Owner: "app", Context: "system", Scopes: subScopes,
				Status: "off", Topic: encounterStart, Endpoint: hookBase + "x", Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	}))
	owner := h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "app" })
	r := h.request("GET", "/fhir/Subscription/$status", owner, "")
	t.Logf("$status of %d Subscriptions: %d, %d KiB", subs, r.status, len(r.body)>>10)
	requireOutcome(t, r, 413, "id")
	admin := h.token(auth.AdminScope)
	requireOutcome(t, h.request("GET", "/fhir/Subscription/$status", admin, ""), 413, "id")
	// Named, or few enough, they are answered.
	r = h.request("GET", "/fhir/Subscription/$status?id=s00001,s00002", owner, "")
	require.Equal(t, 200, r.status, string(r.body))
	require.EqualValues(t, 2, r.json(t)["total"])
}

// parsedBody is an Observation of about n bytes made of minimal
// components: JSON that costs about 50 times its size once parsed.
func parsedBody(n int) string {
	comp := `{"code":{"text":"x"}}`
	k := (n - 200) / (len(comp) + 1)
	return `{"resourceType":"Observation","status":"final","code":{"text":"a"},"component":[` + strings.Repeat(comp+",", k-1) + comp + `]}`
}

// TestLargeBodiesShareAParseBudget: request bodies are parsed within
// Options.BodyBytesInFlight at once. A JSON body costs many times its
// size once parsed and validated (a 4 MiB Observation of small
// components: +214 MiB of heap), and nothing bounded how many were parsed
// at once: here 10 concurrent 2 MiB writes peaked at about +1 GiB (on
// the defaults, every 20 concurrent 4 MiB writes by any client with a
// create scope, a patient app's included, cost over 4 GB). With a budget of
// one body they run one after another (about +300 MiB: one parse and the
// garbage of the last) and all succeed.
func TestLargeBodiesShareAParseBudget(t *testing.T) {
	const writers, size = 10, 2 << 20
	h := setup(t, memory.New(), func(o *api.Options, _ *resources.Config) {
		o.MaxBodyBytes, o.BodyBytesInFlight = size, size
	})
	tok := h.token(allScopes)
	body := parsedBody(size)
	statuses := make([]int, writers)
	grown := heaptest.PeakGrowth(func() {
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { statuses[i] = h.request("POST", "/fhir/Observation", tok, body).status })
		}
		wg.Wait()
	})
	t.Logf("%d concurrent %d KiB writes: heap peak +%d MiB", writers, size>>10, grown>>20)
	for _, s := range statuses {
		require.Equal(t, 201, s)
	}
	require.Less(t, grown, int64(500<<20), "parsed bodies beyond the budget at once")
}

// TestSlowReaderDoesNotHoldTheParseBudget: a request's share of
// BodyBytesInFlight is given back when its answer starts, so a client that
// reads a large answer slowly (or never) cannot keep other writers waiting
// for the budget until they time out.
func TestSlowReaderDoesNotHoldTheParseBudget(t *testing.T) {
	const size = 1 << 20
	h := setup(t, memory.New(), withRequestTimeout(3*time.Second), func(o *api.Options, _ *resources.Config) {
		o.MaxBodyBytes, o.BodyBytesInFlight = 2*size, 2*size
	})
	tok := h.token(allScopes)
	for range 12 { // 12 MiB to search for
		// Setup, not the test: on a loaded machine under the race detector
		// a 1 MiB write can outlast the short request deadline (503).
		require.Eventually(t, func() bool {
			return h.request("POST", "/fhir/Observation", tok, parsedBody(size)).status == 201
		}, answerWait, time.Millisecond)
	}
	// A batch whose body takes most of the budget and whose answer (every
	// Observation) is far larger than the socket buffers, sent by a
	// client that never reads.
	entry, err := json.Marshal(map[string]any{"request": map[string]any{"method": "POST", "url": "Observation"},
		"resource": json.RawMessage(parsedBody(size + size/2))})
	require.NoError(t, err)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[` + string(entry) + `,{"request":{"method":"GET","url":"Observation?_count=100"}}]}`
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /fhir HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n%s", tok, len(batch), batch)
	require.NoError(t, err)
	// The answer has begun; the rest of it waits for a reader that never comes.
	_ = conn.SetReadDeadline(time.Now().Add(answerWait))
	buf := make([]byte, 64)
	k, err := io.ReadAtLeast(conn, buf, 12)
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 200", string(buf[:12]), "%q", buf[:k])

	// Another writer still gets in while that answer waits to be read.
	deadline := time.Now().Add(answerWait)
	for {
		r := h.request("POST", "/fhir/Observation", tok, parsedBody(size))
		if r.status == 201 {
			break
		}
		require.Equal(t, 503, r.status, string(r.body))
		require.True(t, time.Now().Before(deadline), "writers stayed shut out while a slow reader held the budget")
	}
}
