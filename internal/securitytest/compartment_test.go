package securitytest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	// p2Marker is in every resource of patient p2; a p1 token must never see it.
	p2Marker = "P2-PRIVATE-MARKER"
	subScope = "system/Subscription.cruds system/Encounter.rs"
)

// compartments stores two patients with an Observation each (o2 updated
// once, so it has two versions) and returns a patient/ token for p1.
func compartments(t *testing.T, h *harness) (p1 string) {
	t.Helper()
	sys := h.token("system/*.cruds")
	for _, put := range []struct{ path, body string }{
		{"/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
		{"/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2","name":[{"text":"` + p2Marker + `"}]}`},
		{"/fhir/Observation/o1", observation("o1", "p1", "mine")},
		{"/fhir/Observation/o2", observation("o2", "p2", p2Marker)},
		{"/fhir/Observation/o2", observation("o2", "p2", p2Marker+" v2")},
	} {
		r := h.request("PUT", put.path, sys, put.body)
		require.Less(t, r.status, 300, string(r.body))
	}
	return h.token("patient/*.rs patient/Subscription.cruds", forPatient("p1"), asClient("patient-app"))
}

// TestPatientCompartmentEscape: a patient/ token for p1 cannot reach p2's
// data by naming it: _id searches (GET and POST), reads, vreads, history
// and batch GETs return nothing of p2 (404 or empty), and nothing of p2
// appears in any response body. A system token sees p2's data through the
// same requests, so the emptiness is the compartment's doing.
func TestPatientCompartmentEscape(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		p1 := compartments(t, h)
		sys := h.token("system/*.rs")

		searches := []struct {
			path string
			want []string
		}{
			{"/fhir/Observation?_id=o2", []string{}},
			{"/fhir/Observation?_id=o1,o2", []string{"o1"}},
			{"/fhir/Observation?_id=o2&_id=o2", []string{}},
			{"/fhir/Observation?_id=o2&_count=1000", []string{}},
			{"/fhir/Observation?_id=o2&_lastUpdated=gt2000-01-01", []string{}},
			{"/fhir/Observation", []string{"o1"}},
			{"/fhir/Observation?subject=Patient/p2", []string{}}, // the search applies within the compartment
			{"/fhir/Observation?subject=Patient/p1,Patient/p2", []string{"o1"}},
			{"/fhir/Observation?colour=p2", []string{"o1"}}, // an unknown parameter is ignored, the compartment is not
			{"/fhir/Patient?_id=p2", []string{}},
			{"/fhir/Patient?_id=p1,p2", []string{"p1"}},
			{"/fhir/Patient", []string{"p1"}},
		}
		for _, s := range searches {
			r := h.request("GET", s.path, p1, "")
			require.Equal(t, s.want, entryIDs(t, r), s.path)
			require.NotContains(t, string(r.body), p2Marker, s.path)
		}
		// The system token finds p2's data with the same searches.
		require.Equal(t, []string{"o2"}, entryIDs(t, h.request("GET", "/fhir/Observation?_id=o2", sys, "")))
		require.Equal(t, []string{"p2"}, entryIDs(t, h.request("GET", "/fhir/Patient?_id=p2", sys, "")))
		require.Equal(t, []string{"o2"}, entryIDs(t, h.request("GET", "/fhir/Observation?subject=Patient/p2", sys, "")))

		// POST _search with the parameters in a form body.
		r := h.request("POST", "/fhir/Observation/_search", p1, "", "Content-Type: application/x-www-form-urlencoded")
		require.Equal(t, []string{"o1"}, entryIDs(t, r))
		r = h.send("POST", "/fhir/Observation/_search", p1, strings.NewReader(url.Values{"_id": {"o2"}}.Encode()), "Content-Type: application/x-www-form-urlencoded")
		require.Equal(t, []string{}, entryIDs(t, r))
		require.NotContains(t, string(r.body), p2Marker)

		// Reads, vreads and history of p2's resources do not exist for p1.
		for _, path := range []string{
			"/fhir/Observation/o2", "/fhir/Observation/o2/_history/1", "/fhir/Observation/o2/_history/2",
			"/fhir/Observation/o2/_history", "/fhir/Observation/o2/_history?_count=1000",
			"/fhir/Patient/p2", "/fhir/Patient/p2/_history", "/fhir/Patient/p2/_history/1",
		} {
			r := h.request("GET", path, p1, "")
			requireOutcome(t, r, 404, "")
			require.NotContains(t, string(r.body), p2Marker, path)
			require.Equal(t, 200, h.request("GET", path, sys, "").status, "the system token reads %s", path)
		}

		// Batch GETs are held to the same rules.
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Observation/o2"}},
			{"request":{"method":"GET","url":"Observation/o2/_history/1"}},
			{"request":{"method":"GET","url":"Observation?_id=o2"}},
			{"request":{"method":"GET","url":"Patient/p2"}}]}`
		r = h.request("POST", "/fhir", p1, batch)
		require.Equal(t, 200, r.status, string(r.body))
		require.NotContains(t, string(r.body), p2Marker)
		require.Contains(t, string(r.body), `"status":"404`, "the reads answer 404 inside the batch")
		r = h.request("POST", "/fhir", sys, batch)
		require.Contains(t, string(r.body), p2Marker, "the system token's batch does see p2")

		// And nothing was written by any of it.
		require.Equal(t, 2, h.count("Observation"))
		require.Len(t, h.history("Observation", "o2"), 2)
	})
}

// TestForeignSubscriptionOperations: $events, $status, read, search and
// history of another client's Subscription are 404 or empty for a p1
// patient token and for another system client, while the owner sees the
// event (about p2, with p2's data) that would leak.
func TestForeignSubscriptionOperations(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		p1 := compartments(t, h)
		bob := h.token(subScope+" system/Patient.rs", asClient("bob"))
		eve := h.token("system/Subscription.cruds system/*.rs", asClient("eve"))
		bobSub := created(t, h.request("POST", "/fhir/Subscription", bob, subscriptionJSON(hookBase+"bob", withFilter("Encounter?patient=Patient/p2"))))
		r := h.request("PUT", "/fhir/Encounter/e2", h.token("system/*.cruds"), encounter("e2", "p2", `,"reasonCode":[{"text":"`+p2Marker+`"}]`))
		require.Equal(t, 201, r.status, string(r.body))

		// The owner sees its event.
		r = h.request("GET", "/fhir/Subscription/"+bobSub+"/$events", bob, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), "Encounter/e2")

		for name, tok := range map[string]string{"patient token": p1, "other client": eve} {
			for _, req := range []struct{ method, path, body string }{
				{"GET", "/fhir/Subscription/" + bobSub + "/$events", ""},
				{"GET", "/fhir/Subscription/" + bobSub + "/$events?eventsSinceNumber=1&content=full-resource", ""},
				{"POST", "/fhir/Subscription/" + bobSub + "/$events", `{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueString":"1"}]}`},
				{"GET", "/fhir/Subscription/" + bobSub + "/$status", ""},
				{"POST", "/fhir/Subscription/" + bobSub + "/$status", ""},
				{"GET", "/fhir/Subscription/" + bobSub, ""},
				{"GET", "/fhir/Subscription/" + bobSub + "/_history", ""},
				{"GET", "/fhir/Subscription/" + bobSub + "/_history/1", ""},
				{"PUT", "/fhir/Subscription/" + bobSub, subscriptionJSON(hookBase+"stolen", func(m map[string]any) { m["id"] = bobSub })},
				{"DELETE", "/fhir/Subscription/" + bobSub, ""},
			} {
				r := h.request(req.method, req.path, tok, req.body)
				require.Contains(t, []int{403, 404}, r.status, "%s: %s %s: %s", name, req.method, req.path, r.body)
				requireOutcome(t, r, r.status, "")
				require.NotContains(t, string(r.body), "Encounter/e2", name)
				require.NotContains(t, string(r.body), p2Marker, name)
			}
			for _, path := range []string{"/fhir/Subscription?_id=" + bobSub, "/fhir/Subscription", "/fhir/Subscription?url=" + hookBase + "bob"} {
				require.Equal(t, []string{}, entryIDs(t, h.request("GET", path, tok, "")), "%s: %s", name, path)
			}
			for _, path := range []string{"/fhir/Subscription/$status?id=" + bobSub, "/fhir/Subscription/$status"} {
				r := h.request("GET", path, tok, "")
				require.Equal(t, 200, r.status, string(r.body))
				require.NotContains(t, string(r.body), bobSub, "%s: %s", name, path)
			}
		}
		// Bob's Subscription is untouched (the delivery engine may have
		// versioned its status meanwhile: hookBase resolves nowhere).
		versions := h.history("Subscription", bobSub)
		require.False(t, versions[0].Deleted)
		for _, v := range versions {
			require.NotContains(t, string(v.Body), "stolen")
			require.Contains(t, []string{"POST", "PUT"}, string(v.Method))
		}
		require.Equal(t, "POST", string(versions[len(versions)-1].Method))
		st := h.state(bobSub)
		require.Equal(t, "bob", st.Owner)
		require.Equal(t, hookBase+"bob", st.Endpoint)
	})
}

// TestPatientTokenSubscriptions: a patient/ token's Subscription must pin its
// own patient, and with full-resource the notificationShape include targets
// (Practitioner, Location, Organization, Group, ... which are outside any
// patient compartment) must be readable too: all refused at create with
// 403, nothing stored. A pinned id-only Subscription is accepted and is
// told only about its patient's Encounters.
func TestPatientTokenSubscriptions(t *testing.T) {
	t.Parallel()
	h := onPostgres(t)
	admin := h.token("herald.admin")
	r := h.request("PUT", "/admin/clients/patient-app", admin, `{"status":"active","max_payload":"full-resource"}`, "Content-Type: application/json")
	require.Less(t, r.status, 300, string(r.body))
	p1 := h.token("patient/*.rs patient/Subscription.cruds", forPatient("p1"), asClient("patient-app"))
	endpoint := h.recv.srv.URL + "/patient-app"

	for _, c := range []struct {
		name string
		body string
	}{
		{"not pinned", subscriptionJSON(endpoint, withFilter("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"))},
		{"no filter at all", subscriptionJSON(endpoint, func(m map[string]any) { delete(m, "_criteria") })},
		{"pinned to another patient", subscriptionJSON(endpoint, withFilter("Encounter?patient=Patient/p2"))},
		{"pinned with a modifier", subscriptionJSON(endpoint, withFilter("Encounter?patient:missing=false"))},
		{"full-resource: include targets outside the compartment", subscriptionJSON(endpoint, withContent("full-resource"))},
		{"full-resource with the Encounter.patient form", subscriptionJSON(endpoint, withContent("full-resource"), withFilter("Encounter.patient=Patient/p1"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.request("POST", "/fhir/Subscription", p1, c.body)
			require.Contains(t, []int{403, 422}, r.status, string(r.body))
			requireOutcome(t, r, r.status, "")
		})
	}
	require.Empty(t, h.states())
	require.Zero(t, h.count("Subscription"))

	// Pinned, id-only: accepted, and only p1's Encounter is notified.
	id := created(t, h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(endpoint)))
	h.waitStatus(id, "active")
	sys := h.token("system/*.cruds")
	require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e-p2", sys, encounter("e-p2", "p2", "")).status)
	require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e-p1", sys, encounter("e-p1", "p1", "")).status)
	got := h.recv.waitFor(t, "the event of p1", func(got []delivered) bool {
		for _, d := range got {
			if strings.Contains(string(d.Body), "Encounter/e-p1") {
				return true
			}
		}
		return false
	})
	for _, d := range got {
		require.NotContains(t, string(d.Body), "e-p2", "p2's Encounter is never notified to a p1 Subscription")
	}
}

// TestPatientTokenFullResourceIncludes: a patient/ token that subscribes
// with full-resource content must not receive, inside notifications, full
// resources it could not read over REST. The encounter-start topic includes
// the Encounter's practitioner, location and service provider, none of
// which is in the patient's compartment (a p1 token reads them as 404).
//
// The IG's narrative filter form "patient=Patient/p1" names no resource
// type, so the create-time check counts it as pinning the patient on every
// type, include targets too, and accepts the Subscription. Delivery
// therefore fills a full resource only when the owner could read that
// version itself (access.Access.Permits): the Practitioner appears as a
// reference, never in full. Before that check this test failed.
func TestPatientTokenFullResourceIncludes(t *testing.T) {
	t.Parallel()
	h := onPostgres(t)
	admin := h.token("herald.admin")
	r := h.request("PUT", "/admin/clients/patient-app", admin, `{"status":"active","max_payload":"full-resource"}`, "Content-Type: application/json")
	require.Less(t, r.status, 300, string(r.body))
	p1 := h.token("patient/*.rs patient/Subscription.cruds", forPatient("p1"), asClient("patient-app"))
	sys := h.token("system/*.cruds")
	const drMarker = "PRACTITIONER-PRIVATE-MARKER"
	require.Equal(t, 201, h.request("PUT", "/fhir/Practitioner/dr1", sys, `{"resourceType":"Practitioner","id":"dr1","name":[{"text":"`+drMarker+`"}]}`).status)
	requireOutcome(t, h.request("GET", "/fhir/Practitioner/dr1", p1, ""), 404, "")

	// The IG's narrative filter form names no type ("patient=Patient/p1").
	r = h.request("POST", "/fhir/Subscription", p1, subscriptionJSON(h.recv.srv.URL+"/patient-app", withContent("full-resource"), withFilter("patient=Patient/p1")))
	if r.status != 201 {
		requireOutcome(t, r, 403, "")
		require.Empty(t, h.states())
		return
	}
	id := r.json(t)["id"].(string)
	h.waitStatus(id, "active")
	require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", sys, encounter("e1", "p1", `,"participant":[{"individual":{"reference":"Practitioner/dr1"}}]`)).status)
	got := h.recv.waitFor(t, "the event", func(got []delivered) bool {
		for _, d := range got {
			if strings.Contains(string(d.Body), "Encounter/e1") {
				return true
			}
		}
		return false
	})
	for _, d := range got {
		require.NotContains(t, string(d.Body), drMarker,
			"a patient/ token's full-resource notification carries a Practitioner the token cannot read")
	}
}
