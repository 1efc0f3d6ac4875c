package securitytest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAdminAloneCannotReadEvents (issue 17, finding 6): herald.admin grants
// no FHIR access, yet it read every client's $events — the focus
// references, the patients included and when each change happened. An admin
// still sees a Subscription's $status (operations), but $events answers
// only its owner.
func TestAdminAloneCannotReadEvents(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		owner := h.token(subScope+" system/Patient.rs", asClient("owner"))
		id := created(t, h.request("POST", "/fhir/Subscription", owner, subscriptionJSON(h.recv.srv.URL+"/events")))
		h.waitStatus(id, "active")
		sys := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", sys, encounter("e1", "p1", "")).status)
		h.recv.waitFor(t, "the event", func(got []delivered) bool {
			for _, d := range got {
				if strings.Contains(string(d.Body), "Encounter/e1") {
					return true
				}
			}
			return false
		})
		r := h.request("GET", "/fhir/Subscription/"+id+"/$events", owner, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), "Encounter/e1", "the owner reads its events")

		admin := h.token("herald.admin")
		for _, method := range []string{"GET", "POST"} {
			r := h.request(method, "/fhir/Subscription/"+id+"/$events", admin, "")
			requireOutcome(t, r, 404, "")
			require.NotContains(t, string(r.body), "Encounter/e1")
			require.NotContains(t, string(r.body), "Patient/p1")
		}
		require.Equal(t, 200, h.request("GET", "/fhir/Subscription/"+id+"/$status", admin, "").status, "operators still see its status")
	})
}

// TestSessionLeaseCapNotBypassed (issue 17, finding 7): a Subscription made
// with a user's or patient's session lives no longer than that token. A
// system/ scope added to a patient token got HERALD_MAX_LEASE (30 days)
// instead, and an admin's update of another owner's Subscription recomputed
// the lease from the admin's token.
func TestSessionLeaseCapNotBypassed(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sessionEnd := time.Now().Add(time.Hour + time.Minute) // the harness's tokens live an hour
		mixed := h.token("patient/*.rs patient/Subscription.cruds system/Observation.rs", forPatient("p1"), asClient("portal"))
		id := created(t, h.request("POST", "/fhir/Subscription", mixed, subscriptionJSON(hookBase+"mixed")))
		require.True(t, h.state(id).End.Before(sessionEnd), "a system/ scope beside patient ones lifted the lease to %s", h.state(id).End)

		p1 := h.token("patient/*.rs patient/Subscription.cruds", forPatient("p1"), asClient("portal"))
		id = created(t, h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(hookBase+"p1")))
		admin := h.token("herald.admin system/Subscription.cruds", asClient("operator"))
		update := subscriptionJSON(hookBase+"p1", func(m map[string]any) { m["id"] = id; m["reason"] = "edited by an operator" })
		r := h.request("PUT", "/fhir/Subscription/"+id, admin, update)
		require.Equal(t, 200, r.status, string(r.body))
		require.True(t, h.state(id).End.Before(sessionEnd), "an admin's edit lifted the patient's lease to %s", h.state(id).End)
	})
}

// TestPatientTokenCannotWriteIntoAnotherCompartment (issue 17, finding 5):
// a patient/ token for pA created an Observation with subject pA and
// performer Patient/pB. By the R4 CompartmentDefinition it is in pB's
// compartment too, but the write check read subject and patient only, so it
// was stored and pB's subscribers were notified. Now the compartment comes
// from the definition, for the write check and for reads alike.
func TestPatientTokenCannotWriteIntoAnotherCompartment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		pA := h.token("patient/*.cruds", forPatient("pA"), asClient("portal"))
		for _, w := range []struct{ name, method, path, body string }{
			{"Observation performer", "POST", "/fhir/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pA"},"performer":[{"reference":"Patient/pB"}]}`},
			{"Condition asserter", "POST", "/fhir/Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/pA"},"asserter":{"reference":"Patient/pB"}}`},
			{"Patient link", "PUT", "/fhir/Patient/pA", `{"resourceType":"Patient","id":"pA","link":[{"other":{"reference":"Patient/pB"},"type":"seealso"}]}`},
		} {
			r := h.request(w.method, w.path, pA, w.body)
			require.Equal(t, 403, r.status, "%s: %s", w.name, r.body)
			requireOutcome(t, r, 403, "compartment")
		}
		require.Zero(t, h.count("Observation"))
		require.Zero(t, h.count("Condition"))
		require.Zero(t, h.count("Patient"))

		// Written by a system client, the same Observation is in both
		// compartments: pB reads it as well as pA.
		sys := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/o1", sys, `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pA"},"performer":[{"reference":"Patient/pB"}]}`).status)
		pB := h.token("patient/*.rs", forPatient("pB"), asClient("portal"))
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/o1", pB, "").status)
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/o1", pA, "").status)
	})
}
