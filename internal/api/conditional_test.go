package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const patientX = `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"x"}],"active":true}`

// TestConditionalCreate: If-None-Exist creates once; a repeat answers 200
// with the resource it matched, unchanged; a condition matching two is 412;
// parameters search would ignore are 400 here.
func TestConditionalCreate(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		first := h.request("POST", "/fhir/Patient", tok, patientX, "If-None-Exist: identifier=urn:mrn|x")
		require.Equal(t, 201, first.status, string(first.body))
		again := h.request("POST", "/fhir/Patient", tok, patientX, "If-None-Exist: identifier=urn:mrn|x")
		require.Equal(t, 200, again.status, string(again.body))
		require.Equal(t, first.json(t)["id"], again.json(t)["id"])
		require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))
		require.Equal(t, 1, h.count("Patient"))

		y := strings.Replace(patientX, `"x"`, `"y"`, 1)
		require.Equal(t, 201, h.request("POST", "/fhir/Patient", tok, y, "If-None-Exist: identifier=urn:mrn|y").status)
		requireOutcome(t, h.request("POST", "/fhir/Patient", tok, patientX, "If-None-Exist: active=true"), 412, "more than one")
		requireOutcome(t, h.request("POST", "/fhir/Patient", tok, patientX, "If-None-Exist: colour=red"), 400, "colour")
		requireOutcome(t, h.request("POST", "/fhir/Patient", tok, patientX, "If-None-Exist: identifier=a%ZZ"), 400, "")
		require.Equal(t, 2, h.count("Patient"))
	})
}

// TestConcurrentConditionalCreatesMakeOne: 32 clients send the same
// conditional create at once; exactly one resource exists afterwards,
// one answer is 201 and the others 200 with its id.
func TestConcurrentConditionalCreatesMakeOne(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		const clients = 32
		type answer struct {
			status int
			loc    string
			err    error
		}
		start, answers := make(chan struct{}), make(chan answer, clients)
		for range clients {
			go func() {
				<-start
				req, err := http.NewRequest("POST", h.srv.URL+"/fhir/Patient", strings.NewReader(patientX))
				if err != nil {
					answers <- answer{err: err}
					return
				}
				req.Header.Set("Content-Type", "application/fhir+json")
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("If-None-Exist", "identifier=urn:mrn|x")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					answers <- answer{err: err}
					return
				}
				res.Body.Close()
				answers <- answer{status: res.StatusCode, loc: res.Header.Get("Location")}
			}()
		}
		close(start)
		created, locations := 0, map[string]bool{}
		for range clients {
			a := <-answers
			require.NoError(t, a.err)
			require.Contains(t, []int{200, 201}, a.status)
			if a.status == 201 {
				created++
			}
			locations[a.loc] = true
		}
		require.Equal(t, 1, created)
		require.Len(t, locations, 1, "every answer names the one resource")
		require.Equal(t, 1, h.count("Patient"))
	})
}

// TestConditionalUpdateAndDelete: PUT /Type?query creates when nothing
// matches and updates the one match after; DELETE /Type?query deletes the
// one match; two matches are 412 for both.
func TestConditionalUpdateAndDelete(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		r := h.request("PUT", "/fhir/Patient?identifier=urn:mrn|x", tok, patientX)
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		r = h.request("PUT", "/fhir/Patient?identifier=urn:mrn|x", tok, strings.Replace(patientX, `true`, `false`, 1))
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, id, r.json(t)["id"])
		require.Equal(t, `W/"2"`, r.header.Get("ETag"))
		requireOutcome(t, h.request("PUT", "/fhir/Patient?identifier=urn:mrn|x", tok, `{"resourceType":"Patient","id":"other","active":true}`), 400, "not the id")

		other := h.request("PUT", "/fhir/Patient/other", tok, `{"resourceType":"Patient","id":"other"}`)
		require.Equal(t, 201, other.status)
		requireOutcome(t, h.request("PUT", "/fhir/Patient?identifier=urn:mrn|z", tok, `{"resourceType":"Patient","id":"other"}`), 409, "does not match")
		requireOutcome(t, h.request("PUT", "/fhir/Patient?_id=other,"+id, tok, `{"resourceType":"Patient"}`), 412, "more than one")
		requireOutcome(t, h.request("DELETE", "/fhir/Patient?_id=other,"+id, tok, ""), 412, "more than one")

		require.Equal(t, 204, h.request("DELETE", "/fhir/Patient?identifier=urn:mrn|x", tok, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Patient/"+id, tok, ""), 410, "deleted")
		require.Equal(t, 204, h.request("DELETE", "/fhir/Patient?identifier=urn:mrn|x", tok, "").status, "nothing matches: nothing to do")
		requireOutcome(t, h.request("DELETE", "/fhir/Patient", tok, ""), 400, "search parameters")
	})
}

// TestConditionalClaims: the CapabilityStatement claims the conditional
// interactions where they are served, and not for Subscription.
func TestConditionalClaims(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	r := h.request("GET", "/fhir/metadata", "", "")
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type              string `json:"type"`
				ConditionalCreate bool   `json:"conditionalCreate"`
				ConditionalUpdate bool   `json:"conditionalUpdate"`
				ConditionalDelete string `json:"conditionalDelete"`
			} `json:"resource"`
		} `json:"rest"`
	}
	require.NoError(t, json.Unmarshal(r.body, &cs))
	for _, res := range cs.Rest[0].Resource {
		want := res.Type != "Subscription"
		require.Equal(t, want, res.ConditionalCreate, res.Type)
		require.Equal(t, want, res.ConditionalUpdate, res.Type)
		require.Equal(t, map[bool]string{true: "single", false: "not-supported"}[want], res.ConditionalDelete, res.Type)
	}
}

// TestConditionalNotOnSubscriptions: Subscriptions are owner-isolated by
// their rules, so conditions (which search across owners) are refused.
func TestConditionalNotOnSubscriptions(t *testing.T) {
	t.Parallel()
	h := setupSubscriptions(t, stores[0].open(t))
	tok := h.token(allScopes)
	requireOutcome(t, h.request("DELETE", "/fhir/Subscription?status=active", tok, ""), 400, "not supported on Subscription")
}

// TestConditionalEntries: a transaction's ifNoneExist POST that matches
// answers 200 with the existing resource and its urn:uuid fullUrl refers to
// it in other entries; conditional PUT and DELETE URLs work in Bundles.
func TestConditionalEntries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"` + patientURN + `","resource":` + patientX + `,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|x"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"w"},"subject":{"reference":"` + patientURN + `"}},"request":{"method":"POST","url":"Observation"}}]}`
		b1, _ := h.postBundle(t, tok, tx, "transaction-response")
		require.Equal(t, "201 Created", b1.Entry[0].Response.Status)
		b2, _ := h.postBundle(t, tok, tx, "transaction-response")
		require.Equal(t, "200 OK", b2.Entry[0].Response.Status)
		require.Equal(t, b1.Entry[0].Response.Location, b2.Entry[0].Response.Location)
		id := resourceField(t, b1.Entry[0].Resource, "id").(string)
		require.Equal(t, "Patient/"+id, resourceField(t, b2.Entry[1].Resource, "subject", "reference"))
		require.Equal(t, 1, h.count("Patient"))
		require.Equal(t, 2, h.count("Observation"))

		batch := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":` + strings.Replace(patientX, "true", "false", 1) + `,"request":{"method":"PUT","url":"Patient?identifier=urn:mrn|x"}},
			{"request":{"method":"DELETE","url":"Observation?subject=Patient/` + id + `"}}]}`
		b3, _ := h.postBundle(t, tok, batch, "batch-response")
		require.Equal(t, "200 OK", b3.Entry[0].Response.Status)
		require.Equal(t, "Patient/"+id+"/_history/2", b3.Entry[0].Response.Location)
		require.Equal(t, "412 Precondition Failed", b3.Entry[1].Response.Status, "two Observations match")
	})
}

// TestConditionalRead: If-None-Match with the current ETag and
// If-Modified-Since at or after the last change answer 304 without a body.
func TestConditionalRead(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	r := h.request("PUT", "/fhir/Patient/a", tok, `{"resourceType":"Patient","id":"a"}`)
	require.Equal(t, 201, r.status)
	etag, modified := r.header.Get("ETag"), r.header.Get("Last-Modified")

	for _, hdr := range []string{"If-None-Match: " + etag, `If-None-Match: "1"`, `If-None-Match: W/"7", ` + etag, "If-Modified-Since: " + modified} {
		r := h.request("GET", "/fhir/Patient/a", tok, "", hdr)
		require.Equal(t, 304, r.status, hdr)
		require.Empty(t, r.body)
		require.Equal(t, etag, r.header.Get("ETag"))
	}
	for _, hdr := range []string{`If-None-Match: W/"2"`, "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT"} {
		require.Equal(t, 200, h.request("GET", "/fhir/Patient/a", tok, "", hdr).status, hdr)
	}
}
