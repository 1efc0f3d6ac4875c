package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

// TestNotificationTokenOfRecreatedSubscription: a notification token names
// its Subscription by id and reads with that Subscription's owner's grants.
// An admin may create a Subscription at the id of a deleted one, and then
// owns it: the old owner's tokens must not read with the admin's grants
// (here the included Patient, which the old owner may not read).
func TestNotificationTokenOfRecreatedSubscription(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			issuer, err := notifytoken.New(notificationKey, time.Minute, nil)
			require.NoError(t, err)
			h := setupSubscriptionsWith(t, s.open(t), []option{func(o *api.Options, _ *resources.Config) { o.NotificationTokens = issuer }})
			owner := h.token("system/Subscription.cruds system/Encounter.rs", func(c *auth.MintClaims) { c.ClientID = "alice" })
			r := h.request("POST", "/fhir/Subscription", owner, newSubscription(withNotificationToken))
			require.Equal(t, 201, r.status, string(r.body))
			id := r.json(t)["id"].(string)
			st, err := h.store.Subscription(t.Context(), id)
			require.NoError(t, err)

			publisher := h.token("system/Encounter.cru system/Patient.cru")
			require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", publisher, `{"resourceType":"Patient","id":"p1"}`).status)
			enc := `{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`
			require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", publisher, enc).status)
			refs := []store.VersionRef{{Type: "Encounter", ID: "e1", Version: 1}, {Type: "Patient", ID: "p1", Version: 1}}
			tok, _, err := issuer.Mint(h.base, id, store.SubscriptionOwner{Client: st.Owner, Context: st.Context}, refs)
			require.NoError(t, err)
			require.Equal(t, 200, h.request("GET", "/fhir/Encounter/e1", tok, "").status)
			require.Equal(t, 403, h.request("GET", "/fhir/Patient/p1", tok, "").status, "alice may not read Patients")

			require.Equal(t, 204, h.request("DELETE", "/fhir/Subscription/"+id, owner, "").status)
			admin := h.token("herald.admin system/*.cruds", func(c *auth.MintClaims) { c.ClientID = "ops" })
			r = h.request("PUT", "/fhir/Subscription/"+id, admin, newSubscription(func(m map[string]any) { m["id"] = id }))
			require.Equal(t, 201, r.status, string(r.body))
			now, err := h.store.Subscription(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, "ops", now.Owner)

			for _, path := range []string{"/fhir/Patient/p1", "/fhir/Encounter/e1"} {
				got := h.request("GET", path, tok, "")
				require.Equal(t, 401, got.status, "%s: a token of the deleted Subscription: %s", path, got.body)
			}
		})
	}
}
