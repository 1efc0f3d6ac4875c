package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

var notificationKey = []byte("a-notification-token-key-of-32-bytes!")

func withNotificationToken(m map[string]any) {
	ch := channel(m)
	ch["extension"] = append(ch["extension"].([]any), map[string]any{
		"url": "https://herald.dev/fhir/StructureDefinition/notification-access-token", "valueBoolean": true})
}

// TestNotificationAccessToken: a notification access token reads exactly
// the resources its notification names (the focus, at its version or now,
// and the included Patient), as the Subscription's owner; it is refused
// for another resource, a write, a search, history, an operation, after
// expiry, with a forged signature, for another audience, and once the
// owner is suspended.
func TestNotificationAccessToken(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			issuer, err := notifytoken.New(notificationKey, time.Minute, nil)
			require.NoError(t, err)
			h := setupSubscriptionsWith(t, s.open(t), []option{func(o *api.Options, _ *resources.Config) { o.NotificationTokens = issuer }})
			owner := h.token("system/Subscription.cruds system/Encounter.rs system/Patient.rs", func(c *auth.MintClaims) { c.ClientID = "alice" })
			r := h.request("POST", "/fhir/Subscription", owner, newSubscription(withNotificationToken))
			require.Equal(t, 201, r.status, string(r.body))
			id := r.json(t)["id"].(string)

			publisher := h.token("system/Encounter.cru system/Patient.cru")
			require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", publisher, `{"resourceType":"Patient","id":"p1"}`).status)
			for _, e := range []string{"e1", "e2"} {
				enc := `{"resourceType":"Encounter","id":"` + e + `","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`
				require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/"+e, publisher, enc).status)
			}
			refs := []store.VersionRef{{Type: "Encounter", ID: "e1", Version: 1}, {Type: "Patient", ID: "p1", Version: 1}}
			st, err := h.store.Subscription(t.Context(), id)
			require.NoError(t, err)
			alice := store.SubscriptionOwner{Client: st.Owner, Context: st.Context}
			tok, _, err := issuer.Mint(h.base, id, alice, refs)
			require.NoError(t, err)

			for _, path := range []string{"/fhir/Encounter/e1", "/fhir/Encounter/e1/_history/1", "/fhir/Patient/p1"} {
				got := h.request("GET", path, tok, "")
				require.Equal(t, 200, got.status, "%s: %s", path, got.body)
			}
			require.Contains(t, string(h.request("GET", "/fhir/Encounter/e1", tok, "").body), `"id":"e1"`)
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/fhir/Encounter/e2", ""},
				{"GET", "/fhir/Encounter/e1/_history/2", ""},
				{"GET", "/fhir/Encounter/e1/_history", ""},
				{"GET", "/fhir/Encounter?_id=e1", ""},
				{"GET", "/fhir/Encounter", ""},
				{"PUT", "/fhir/Encounter/e1", `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"}}`},
				{"DELETE", "/fhir/Encounter/e1", ""},
				{"GET", "/fhir/Subscription/" + id, ""},
				{"GET", "/fhir/Subscription/" + id + "/$status", ""},
				{"GET", "/fhir/Subscription/" + id + "/$events", ""},
			} {
				requireOutcome(t, h.request(c.method, c.path, tok, c.body), 403, "only the resources its notification names")
			}
			require.Equal(t, 403, h.adminRequest("GET", "/admin/clients", tok, "").status, "no admin access either")

			expired, err := notifytoken.New(notificationKey, time.Minute, func() time.Time { return time.Now().Add(-2 * time.Minute) })
			require.NoError(t, err)
			old, _, err := expired.Mint(h.base, id, alice, refs)
			require.NoError(t, err)
			requireOutcome(t, h.request("GET", "/fhir/Encounter/e1", old, ""), 401, "expiry")

			forger, err := notifytoken.New([]byte(strings.Repeat("f", 32)), time.Minute, nil)
			require.NoError(t, err)
			forged, _, err := forger.Mint(h.base, id, alice, refs)
			require.NoError(t, err)
			requireOutcome(t, h.request("GET", "/fhir/Encounter/e1", forged, ""), 401, "signature")

			elsewhere, _, err := issuer.Mint("https://other.example/fhir", id, alice, refs)
			require.NoError(t, err)
			requireOutcome(t, h.request("GET", "/fhir/Encounter/e1", elsewhere, ""), 401, "audience")

			// The owner's policy applies at read time: suspended, its
			// tokens stop working.
			_, err = h.store.PutClient(h.t.Context(), store.Client{ClientID: "alice", Status: "suspended", MaxPayload: "id-only"})
			require.NoError(t, err)
			requireOutcome(t, h.request("GET", "/fhir/Encounter/e1", tok, ""), 403, "may no longer be read")
		})
	}
}

// TestNotificationAccessTokenNeedsIDOnly: the extension with empty or
// full-resource content is refused with a 422 that says why.
func TestNotificationAccessTokenNeedsIDOnly(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := fullResourceOwner(t, h)
		for _, content := range []string{"empty", "full-resource"} {
			requireOutcome(t, h.request("POST", "/fhir/Subscription", tok, newSubscription(withContent(content), withNotificationToken)), 422, "needs id-only content")
		}
		// Websocket notifications carry no tokens: asking for them is refused,
		// not silently ignored.
		websocket := func(m map[string]any) {
			ch := channel(m)
			ch["type"] = "websocket"
			delete(ch, "endpoint")
		}
		requireOutcome(t, h.request("POST", "/fhir/Subscription", tok, newSubscription(withContent("id-only"), websocket, withNotificationToken)), 422, "is for rest-hook")
	})
}
