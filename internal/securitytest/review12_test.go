package securitytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// Findings of the independent review of issue 12 (review12), each an attack
// through real HTTP.

// TestFilterValuesCountTowardsTheFilterLimit: HERALD_MAX_FILTER_PARAMS bounds
// the parameters of a filter, but not the comma-separated values of one
// parameter. One "class=X0,…,X99999" filter is accepted, and 20 such
// Subscriptions (distinct values, so nothing is shared) make every Encounter
// write of every client ~60x slower (≈5 ms → ≈300 ms in the write's
// transaction); at the default quota of 1,000 a single client can stall all
// Encounter writes for seconds each.
func TestFilterValuesCountTowardsTheFilterLimit(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(subScope)
		vals := make([]string, 10_000)
		for i := range vals {
			vals[i] = fmt.Sprintf("X%d", i)
		}
		r := h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"v",
			withFilter("Encounter?patient=Patient/p1&class="+strings.Join(vals, ","))))
		require.Equal(t, 422, r.status, "%.200s", r.body)
		require.Empty(t, h.states())
	})
}

// TestConcurrentSubscriptionWritesDoNotStarveThePool: a Subscription write
// holds its transaction's connection and then reads the allow-list and the
// client registry through the pool (Rules.Write: checkEndpoint and
// authorizeOwner use Rules.Admin, the Store, not the Tx). As many
// concurrent Subscription writes as the pool has connections (16 in
// production, and here) each hold one and wait forever for another: every
// request that needs the database, and delivery, hangs until the writers'
// clients give up (the server has no handler timeout). Any client with
// Subscription.c can take an instance down with 32 open requests.
func TestConcurrentSubscriptionWritesDoNotStarveThePool(t *testing.T) {
	t.Parallel()
	h := setup(t, pgtest.New(t, postgres.WithMaxConns(postgres.DefaultMaxConns)))
	tok := h.token(subScope, asClient("burst"))
	h.mu.Lock()
	h.tokens = append(h.tokens, tok)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	start := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/fhir/Subscription", strings.NewReader(subscriptionJSON(hookBase+"burst")))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			status := 0 // no answer within 30 s
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				status = res.StatusCode
			}
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, map[int]int{201: 32}, codes, "status → count; 0: no answer within 30 s")
}

// TestRetiredTopicRefusesVersionedCanonical: once the admin retires
// encounter-start, a Subscription naming it "url" is refused (422), but one
// naming it "url|1.0.0" is still accepted, handshaken and kept active
// (topic.Library.Lookup returns a versioned canonical whatever its status,
// and the Compiler never asks): the README's "the topic is in the library
// and active" holds for one spelling only.
func TestRetiredTopicRefusesVersionedCanonical(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok, admin := h.token(subScope), h.token("herald.admin")
		r := h.request("GET", "/fhir/SubscriptionTopic/encounter-start", tok, "")
		require.Equal(t, 200, r.status, string(r.body))
		topic := r.json(t)
		topic["status"] = "retired"
		b, _ := json.Marshal(topic)
		r = h.request("PUT", "/fhir/SubscriptionTopic/encounter-start", admin, string(b))
		require.Equal(t, 200, r.status, "%.300s", r.body)

		r = h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"x"))
		requireOutcome(t, r, 422, "Subscription.criteria")
		r = h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"x", withTopic(encounterStart+"|1.0.0")))
		requireOutcome(t, r, 422, "Subscription.criteria")
		require.Empty(t, h.states())
	})
}

// TestOneLaunchContextCannotExhaustTheClientQuota: the quota counts a
// client's live Subscriptions across its launch contexts, but each context
// sees and may delete only its own. One patient of a shared SMART app (a
// patient/ token with Subscription.c) fills the quota, and every other
// patient and the app's own system/ token get 429 "delete or switch off one
// it no longer needs", while GET /fhir/Subscription shows them none they
// could delete: one end user locks the whole app out until an admin acts.
func TestOneLaunchContextCannotExhaustTheClientQuota(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const scope = "patient/Encounter.rs patient/Subscription.cruds"
		p1 := h.token(scope, forPatient("p1"), asClient("app"))
		p2 := h.token(scope, forPatient("p2"), asClient("app"))
		sys := h.token(subScope, asClient("app"))
		for range 3 {
			created(t, h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(hookBase+"p1")))
		}
		require.Equal(t, 429, h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(hookBase+"p1")).status)

		r := h.request("POST", "/fhir/Subscription", p2, subscriptionJSON(hookBase+"p2", withFilter("Encounter?patient=Patient/p2")))
		require.Equal(t, 201, r.status, "another patient of the app is locked out: %.300s", r.body)
		r = h.request("POST", "/fhir/Subscription", sys, subscriptionJSON(hookBase+"sys"))
		require.Equal(t, 201, r.status, "the app itself is locked out, and sees nothing to delete (%v): %.300s",
			entryIDs(t, h.request("GET", "/fhir/Subscription", sys, "")), r.body)
	}, maxSubscriptions(3))
}

// TestUserContextDoesNotConfuseSubWithFHIRUser: a user/ token's context is
// "user/" + (fhirUser, else sub), one namespace for two kinds of name. A
// user whose token carries no fhirUser and whose sub (at IdPs that use the
// login name as sub, chosen by the user) is "Practitioner/alice" owns
// alice's Subscriptions: reads her endpoint and filters, and may change or
// delete them.
func TestUserContextDoesNotConfuseSubWithFHIRUser(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const scope = "user/Encounter.rs user/Subscription.cruds"
		alice := h.token(scope, asClient("portal"), func(c *auth.MintClaims) { c.Subject, c.FHIRUser = "u-1001", "Practitioner/alice" })
		mallory := h.token(scope, asClient("portal"), func(c *auth.MintClaims) { c.Subject = "Practitioner/alice" })
		id := created(t, h.request("POST", "/fhir/Subscription", alice, subscriptionJSON(hookBase+"alice-private")))
		requireInvisible(t, h, mallory, id, subscriptionJSON(hookBase+"mallory", func(m map[string]any) { m["id"] = id }))
		require.Equal(t, hookBase+"alice-private", h.state(id).Endpoint)
	})
}

// TestForeignSubscriptionHistoryPageIsNotFound: History authorises against
// the newest version of the page it read, and an empty page has none, so
// GET Subscription/{id}/_history?_cursor=1 answers another owner's id with
// 200 (an empty history Bundle) and an unknown id with 404: an existence
// oracle for any owner's Subscription ids (and, the same way, for
// resources outside a patient/ token's compartment).
func TestForeignSubscriptionHistoryPageIsNotFound(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		alice := h.token(subScope, asClient("alice"))
		carol := h.token(subScope, asClient("carol"))
		created(t, h.request("PUT", "/fhir/Subscription/taken", alice, subscriptionJSON(hookBase+"a", func(m map[string]any) { m["id"] = "taken" })))
		requireOutcome(t, h.request("GET", "/fhir/Subscription/never/_history?_cursor=1", carol, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/taken/_history?_cursor=1", carol, ""), 404, "")
	})
}
