package api_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/resources"
)

type historyPage struct {
	Link []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct{ Method, URL string }
	} `json:"entry"`
}

// walkHistory follows next links from path and returns every entry's
// "METHOD fullUrl" in order, requiring valid R4 history Bundles of at most
// count entries.
func (h *harness) walkHistory(t *testing.T, tok, path string, count int) []string {
	t.Helper()
	var out []string
	for path != "" {
		r := h.request("GET", path, tok, "")
		require.Equal(t, 200, r.status, string(r.body))
		fhirtest.RequireValidR4(t, r.body)
		require.Equal(t, "history", r.json(t)["type"])
		var p historyPage
		require.NoError(t, json.Unmarshal(r.body, &p))
		require.LessOrEqual(t, len(p.Entry), count)
		for _, e := range p.Entry {
			out = append(out, e.Request.Method+" "+strings.TrimPrefix(e.FullURL, h.base+"/"))
		}
		path = ""
		for _, l := range p.Link {
			if l.Relation == "next" {
				path = strings.TrimPrefix(l.URL, h.srv.URL)
			}
		}
	}
	return out
}

// TestTypeAndSystemHistory: GET /{type}/_history and GET /_history list
// versions newest first across resources, page with next links that keep
// _since, and are bounded by the token's read grants.
func TestTypeAndSystemHistory(t *testing.T) {
	t.Parallel()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			testTypeAndSystemHistory(t, setup(t, st.open(t), ticking()))
		})
	}
}

// ticking makes every write a second later than the one before, so history
// order does not depend on which writes share a millisecond.
func ticking() option {
	return func(_ *api.Options, rc *resources.Config) {
		var mu sync.Mutex
		now := time.Now().Add(-time.Hour)
		rc.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		}
	}
}

func testTypeAndSystemHistory(t *testing.T, h *harness) {
	{
		tok := h.token(allScopes)
		create := func(typ, body string) string {
			r := h.request("POST", "/fhir/"+typ, tok, body)
			require.Equal(t, 201, r.status, string(r.body))
			return r.json(t)["id"].(string)
		}
		a := create("Patient", `{"resourceType":"Patient","active":true}`)
		b := create("Patient", `{"resourceType":"Patient","active":true}`)
		require.Equal(t, 200, h.request("PUT", "/fhir/Patient/"+a, tok, `{"resourceType":"Patient","id":"`+a+`","active":false}`).status)
		o := create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+b+`"}}`)
		require.Equal(t, 204, h.request("DELETE", "/fhir/Patient/"+b, tok, "").status)

		require.Equal(t, []string{"DELETE Patient/" + b, "PUT Patient/" + a, "POST Patient/" + b, "POST Patient/" + a},
			h.walkHistory(t, tok, "/fhir/Patient/_history?_count=1", 1))
		require.Equal(t, []string{"DELETE Patient/" + b, "POST Observation/" + o, "PUT Patient/" + a, "POST Patient/" + b, "POST Patient/" + a},
			h.walkHistory(t, tok, "/fhir/_history?_count=2", 2))

		since := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		require.Empty(t, h.walkHistory(t, tok, "/fhir/_history?_since="+since, 50))
		require.Len(t, h.walkHistory(t, tok, "/fhir/Patient/_history?_count=1&_since=2000-01-01T00:00:00Z", 1), 4, "next links keep _since")

		// Grants bound both: a patient's token sees its compartment only.
		mine := h.token("patient/*.rs", forPatient(b))
		require.Equal(t, []string{"POST Observation/" + o}, h.walkHistory(t, mine, "/fhir/Observation/_history", 50))
		require.Equal(t, []string{"DELETE Patient/" + b, "POST Observation/" + o, "POST Patient/" + b}, h.walkHistory(t, mine, "/fhir/_history", 50))
		patientsOnly := h.token("system/Patient.rs")
		require.Len(t, h.walkHistory(t, patientsOnly, "/fhir/_history", 50), 4)
		requireOutcome(t, h.request("GET", "/fhir/Observation/_history", patientsOnly, ""), 403, "Observation")
		mixed := h.token("system/Patient.rs patient/Observation.rs", forPatient(b))
		requireOutcome(t, h.request("GET", "/fhir/_history", mixed, ""), 403, "type history")

		// Errors name the real problem.
		requireOutcome(t, h.request("GET", "/fhir/_history?_since=yesterday", tok, ""), 400, "_since")
		requireOutcome(t, h.request("GET", "/fhir/Patient/_history?_cursor=x", tok, ""), 400, "paging position")
		requireOutcome(t, h.request("GET", "/fhir/Patiant/_history", tok, ""), 404, "not a FHIR R4 resource type")
	}
}
