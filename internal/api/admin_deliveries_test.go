package api_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
)

// deliveryRow is the part of a GET /admin/subscriptions row tests read.
type deliveryRow struct {
	ID                   string     `json:"id"`
	Owner                string     `json:"owner"`
	Status               string     `json:"status"`
	EventsWaiting        int64      `json:"events_waiting"`
	LastEventNumber      int64      `json:"last_event_number"`
	OldestUndeliveredAt  *time.Time `json:"oldest_undelivered_at"`
	OldestUndeliveredAge *float64   `json:"oldest_undelivered_age_seconds"`
	FailureCount         int        `json:"failure_count"`
	DueAt                *time.Time `json:"due_at"`
	LastError            *struct {
		Class      string `json:"class"`
		StatusCode int    `json:"status_code"`
	} `json:"last_error"`
}

type attemptRow struct {
	Seq          int64  `json:"seq"`
	Outcome      string `json:"outcome"`
	Class        string `json:"class"`
	StatusCode   int    `json:"status_code"`
	FirstEvent   int64  `json:"first_event"`
	LastEvent    int64  `json:"last_event"`
	ResponseBody string `json:"response_body"`
}

// createSubscription creates one as client (subScopes) and returns its id.
func createSubscription(t *testing.T, h *subHarness, client string) string {
	t.Helper()
	r := h.request("POST", "/fhir/Subscription", h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = client }), newSubscription())
	require.Equal(t, 201, r.status, string(r.body))
	return r.json(t)["id"].(string)
}

// logAttempt records a as delivery would: claimed, then finished with the
// outcome it stands for (a failure counts one up).
func logAttempt(t *testing.T, st store.Store, id string, a store.Attempt) {
	t.Helper()
	ctx := context.Background()
	var lease string
	deadline := time.Now().Add(10 * time.Second)
	for lease == "" {
		require.True(t, time.Now().Before(deadline), "Subscription/%s was never claimable", id)
		tasks, err := st.ClaimDue(ctx, time.Now().Add(24*time.Hour), 100, time.Minute, 0, 0)
		require.NoError(t, err)
		for _, tk := range tasks {
			if tk.State.ID == id {
				lease = tk.Lease
			} else {
				require.NoError(t, st.ReleaseLease(ctx, tk.State.ID, tk.Lease))
			}
		}
	}
	now := time.Now()
	res := store.DeliveryResult{SubscriptionID: id, Lease: lease, Now: now, Next: now.Add(time.Hour), Attempt: &a}
	if a.Outcome == store.AttemptFailure {
		res.Failed = true
	} else {
		res.Sent = true
	}
	require.NoError(t, st.FinishDelivery(ctx, res))
}

func failure(class string, status int) store.Attempt {
	return store.Attempt{At: time.Now(), Instance: "test", Channel: "rest-hook", Kind: "handshake",
		Outcome: store.AttemptFailure, Class: class, StatusCode: status, Latency: 3 * time.Millisecond}
}

// setStatus changes a Subscription's status as delivery does.
func setStatus(t *testing.T, st store.Store, id, status string) {
	t.Helper()
	require.NoError(t, st.InTx(context.Background(), func(tx store.Tx) error {
		return subscription.SetStatus(context.Background(), tx, id, status, "test: "+status, "", time.Now())
	}))
}

func TestAdminDeliveriesListShowsQueueLag(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		admin := h.adminToken()
		a := createSubscription(t, h, "app-a")
		b := createSubscription(t, h, "app-b")
		publisher := h.token("system/Encounter.cru")
		before := time.Now().Add(-time.Second)
		for i := 1; i <= 2; i++ {
			body := `{"resourceType":"Encounter","id":"e` + strconv.Itoa(i) + `","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`
			require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e"+strconv.Itoa(i), publisher, body).status)
		}
		logAttempt(t, h.store, b, failure("http-status", 503))

		var rows []deliveryRow
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions", admin, ""), 200, &rows)
		require.Len(t, rows, 2)
		byID := map[string]deliveryRow{rows[0].ID: rows[0], rows[1].ID: rows[1]}
		ra := byID[a]
		require.Equal(t, "app-a", ra.Owner)
		require.Equal(t, int64(2), ra.LastEventNumber)
		require.Equal(t, int64(2), ra.EventsWaiting, "both events wait: nothing was delivered")
		require.NotNil(t, ra.OldestUndeliveredAt)
		require.True(t, ra.OldestUndeliveredAt.After(before), "the oldest waiting event's time")
		require.NotNil(t, ra.OldestUndeliveredAge)
		require.GreaterOrEqual(t, *ra.OldestUndeliveredAge, 0.0)
		require.Nil(t, ra.LastError)
		rb := byID[b]
		require.Equal(t, 1, rb.FailureCount)
		require.NotNil(t, rb.LastError)
		require.Equal(t, "http-status", rb.LastError.Class)
		require.Equal(t, 503, rb.LastError.StatusCode)

		// Filters and paging.
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?client=app-b", admin, ""), 200, &rows)
		require.Len(t, rows, 1)
		require.Equal(t, b, rows[0].ID)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?status=error,off", admin, ""), 200, &rows)
		require.Empty(t, rows)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?topic="+encounterStart+"&endpoint="+hookBase+"hook-1", admin, ""), 200, &rows)
		require.Len(t, rows, 2)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?limit=1", admin, ""), 200, &rows)
		require.Len(t, rows, 1)
		first := rows[0].ID
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?limit=1&after="+first, admin, ""), 200, &rows)
		require.Len(t, rows, 1)
		require.Greater(t, rows[0].ID, first)

		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions?status=on", admin, ""), 400, "status")
		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions?limit=1001", admin, ""), 400, "limit")
		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions", h.token(subScopes), ""), 403, "herald.admin")
	})
}

func TestAdminAttemptsNewestFirstAndFiltered(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		admin := h.adminToken()
		id := createSubscription(t, h, "app-a")
		logAttempt(t, h.store, id, failure("timeout", 0))
		logAttempt(t, h.store, id, failure("http-status", 500))
		ok := store.Attempt{At: time.Now(), Instance: "test", Channel: "rest-hook", Kind: "handshake",
			Outcome: store.AttemptSuccess, StatusCode: 200, ResponseBody: "ok"}
		logAttempt(t, h.store, id, ok)

		var as []attemptRow
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts", admin, ""), 200, &as)
		require.Len(t, as, 3)
		require.Equal(t, []string{"success", "failure", "failure"}, []string{as[0].Outcome, as[1].Outcome, as[2].Outcome}, "newest first")
		require.Equal(t, "ok", as[0].ResponseBody)
		require.Greater(t, as[0].Seq, as[1].Seq)

		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?outcome=failure", admin, ""), 200, &as)
		require.Len(t, as, 2)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?class=timeout", admin, ""), 200, &as)
		require.Len(t, as, 1)
		require.Equal(t, "timeout", as[0].Class)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?limit=1", admin, ""), 200, &as)
		require.Len(t, as, 1)
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?before="+strconv.FormatInt(as[0].Seq, 10), admin, ""), 200, &as)
		require.Len(t, as, 2, "the page before the newest")
		require.Equal(t, "failure", as[0].Outcome)

		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?class=boom", admin, ""), 400, "class")
		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions/"+id+"/attempts?outcome=maybe", admin, ""), 400, "outcome")
		requireOutcome(t, h.adminRequest("GET", "/admin/subscriptions/nope/attempts", admin, ""), 404, "nope")
	})
}

// auditActions are the actions of the audit log, newest first.
func auditActions(t *testing.T, h *subHarness) []string {
	t.Helper()
	var log []struct {
		Action string `json:"action"`
		Target string `json:"target"`
		Actor  string `json:"actor"`
	}
	requireJSON(t, h.adminRequest("GET", "/admin/audit", h.adminToken(), ""), 200, &log)
	var out []string
	for _, e := range log {
		out = append(out, e.Action+" "+e.Target+" by "+e.Actor)
	}
	return out
}

func TestAdminRetryResetsBackoffAndIsAudited(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		admin := h.adminToken()
		id := createSubscription(t, h, "app-a")
		logAttempt(t, h.store, id, failure("timeout", 0))
		logAttempt(t, h.store, id, failure("timeout", 0))

		var row deliveryRow
		requireJSON(t, h.adminRequest("GET", "/admin/subscriptions?client=app-a", admin, ""), 200, &[]deliveryRow{})
		before := time.Now()
		requireJSON(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/retry", admin, ""), 200, &row)
		require.Equal(t, 0, row.FailureCount, "the backoff starts again")
		require.NotNil(t, row.DueAt)
		require.WithinDuration(t, before, *row.DueAt, 5*time.Second, "due now, not in an hour")
		require.Equal(t, "requested", row.Status, "the status is left alone")
		require.Contains(t, auditActions(t, h)[0], "subscription.retry Subscription/"+id+" by ")

		// The next claim takes it at once.
		tasks, err := h.store.ClaimDue(context.Background(), time.Now(), 10, time.Minute, 0, 0)
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		require.Equal(t, id, tasks[0].State.ID)
		require.True(t, tasks[0].HandshakePending, "what was owed is still owed")

		setStatus(t, h.store, id, "off")
		requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/retry", admin, ""), 409, "reactivate")
		requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/nope/retry", admin, ""), 404, "nope")
		requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/retry", h.token(subScopes), ""), 403, "herald.admin")
	})
}

func TestAdminReactivate(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		admin := h.adminToken()
		id := createSubscription(t, h, "app-a")
		requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/reactivate", admin, ""), 409, "only a Subscription in error or off")

		setStatus(t, h.store, id, "off")
		var row deliveryRow
		requireJSON(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/reactivate", admin, ""), 200, &row)
		require.Equal(t, "requested", row.Status)
		read := h.request("GET", "/fhir/Subscription/"+id, h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "app-a" }), "")
		require.Equal(t, 200, read.status)
		require.Equal(t, "requested", read.json(t)["status"], "a new version of the resource")
		require.NotContains(t, read.json(t), "error")
		require.Contains(t, auditActions(t, h)[0], "subscription.reactivate Subscription/"+id)
		tasks, err := h.store.ClaimDue(context.Background(), time.Now().Add(time.Second), 10, time.Minute, 0, 0)
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		require.True(t, tasks[0].HandshakePending, "a fresh handshake is owed")
		require.NoError(t, h.store.ReleaseLease(context.Background(), id, tasks[0].Lease))

		// The policy that decides every send decides here too: a suspended
		// owner's Subscription stays off, and nothing is audited.
		setStatus(t, h.store, id, "error")
		_, err = h.store.PutClient(context.Background(), store.Client{ClientID: "app-a", Status: "suspended", MaxPayload: "id-only", UpdatedAt: time.Now()})
		require.NoError(t, err)
		audited := len(auditActions(t, h))
		requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/"+id+"/reactivate", admin, ""), 409, "suspended")
		require.Len(t, auditActions(t, h), audited)
		st, err := h.store.Subscription(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, "error", st.Status)
	})
}

// TestAdminReactivateKeepsTheOwnersQuota: an owner at its quota of live
// Subscriptions switches one off to make room (as the 429 tells it to) and
// creates another. Reactivating the one switched off would make the owner
// exceed the quota that every write of a Subscription enforces, an admin's
// PUT included: reactivate is refused alike (429), audits nothing and
// leaves it off.
func TestAdminReactivateKeepsTheOwnersQuota(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			h := setupSubscriptions(t, s.open(t), func(p *subscription.Policy) { p.MaxSubscriptionsPerClient = 1 })
			admin := h.adminToken()
			owner := h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "app-a" })
			first := createSubscription(t, h, "app-a")
			r := h.request("POST", "/fhir/Subscription", owner, newSubscription())
			require.Equal(t, 429, r.status, "the quota: %s", r.body)
			off := func(m map[string]any) { m["id"], m["status"] = first, "off" }
			r = h.request("PUT", "/fhir/Subscription/"+first, owner, newSubscription(off))
			require.Equal(t, 200, r.status, string(r.body))
			createSubscription(t, h, "app-a") // room made

			on := func(m map[string]any) { m["id"], m["status"] = first, "requested" }
			editor := h.token(auth.AdminScope+" "+subScopes, func(c *auth.MintClaims) { c.ClientID = "ops" })
			r = h.request("PUT", "/fhir/Subscription/"+first, editor, newSubscription(on))
			require.Equal(t, 429, r.status, "an admin's write keeps the owner's quota: %s", r.body)
			audited := len(auditActions(t, h))
			requireOutcome(t, h.adminRequest("POST", "/admin/subscriptions/"+first+"/reactivate", admin, ""), 429, "live Subscriptions")
			require.Len(t, auditActions(t, h), audited)
			st, err := h.store.Subscription(context.Background(), first)
			require.NoError(t, err)
			require.Equal(t, "off", st.Status)
		})
	}
}
