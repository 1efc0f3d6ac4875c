package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	labScope       = "Observation.rs?category=" + categorySystem + "|laboratory"
)

// observation is an Observation of a category about a patient.
func observation(id, category, patient string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","category":[{"coding":[{"system":%q,"code":%q}]}],"code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`,
		id, categorySystem, category, patient)
}

// seedCategories stores Patients p1 and p2 and 30 Observations: lab-0…4
// (laboratory; 0, 2 and 4 about p1) among vit-00…24 (vital-signs), so most
// of what a laboratory grant could page through is outside it.
func seedCategories(t *testing.T, h *harness) {
	t.Helper()
	all := h.token(allScopes)
	for _, p := range []string{"p1", "p2"} {
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/"+p, all, `{"resourceType":"Patient","id":"`+p+`"}`).status)
	}
	for i := range 25 {
		id := fmt.Sprintf("vit-%02d", i)
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/"+id, all, observation(id, "vital-signs", "p1")).status)
	}
	for i := range 5 {
		id, patient := fmt.Sprintf("lab-%d", i), []string{"p1", "p2"}[i%2]
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/"+id, all, observation(id, "laboratory", patient)).status)
	}
}

// pages follows next links from path and returns the ids of each page's
// matches, and the first page's total.
func pages(t *testing.T, h *harness, tok, path string) (ids [][]string, total float64) {
	t.Helper()
	for n := 0; path != ""; n++ {
		require.Less(t, n, 20, "too many pages")
		r := h.request("GET", path, tok, "")
		require.Equal(t, 200, r.status, string(r.body))
		m := r.json(t)
		if n == 0 && m["total"] != nil {
			total = m["total"].(float64)
		}
		var page []string
		entries, _ := m["entry"].([]any)
		for _, e := range entries {
			e := e.(map[string]any)
			if e["search"].(map[string]any)["mode"] == "match" {
				res := e["resource"].(map[string]any)
				page = append(page, res["resourceType"].(string)+"/"+res["id"].(string))
			}
		}
		ids = append(ids, page)
		path = ""
		for _, l := range m["link"].([]any) {
			if l := l.(map[string]any); l["relation"] == "next" {
				u, err := url.Parse(l["url"].(string))
				require.NoError(t, err)
				path = u.RequestURI()
			}
		}
	}
	return ids, total
}

func flat(pages [][]string) []string {
	var out []string
	for _, p := range pages {
		out = append(out, p...)
	}
	slices.Sort(out)
	return out
}

// TestGranularScopeReadsOnlyItsCategory: a SMART v2 granular scope
// (?category=…) grants exactly the resources its query matches, on read,
// vread, search (full pages, honest totals), history, compartment search
// and _include/_revinclude, on both stores.
func TestGranularScopeReadsOnlyItsCategory(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		seedCategories(t, h)
		labs := []string{"Observation/lab-0", "Observation/lab-1", "Observation/lab-2", "Observation/lab-3", "Observation/lab-4"}
		tok := h.token("system/" + labScope + " system/Patient.rs")

		require.Equal(t, 200, h.request("GET", "/fhir/Observation/lab-1", tok, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Observation/vit-03", tok, ""), 404, "")
		require.Equal(t, 200, h.request("GET", "/fhir/Observation/lab-1/_history/1", tok, "").status)
		requireOutcome(t, h.request("GET", "/fhir/Observation/vit-03/_history/1", tok, ""), 404, "")

		got, total := pages(t, h, tok, "/fhir/Observation?_count=2&_total=accurate")
		require.Equal(t, float64(5), total, "the total counts only what the grant reaches")
		require.Equal(t, []int{2, 2, 1}, []int{len(got[0]), len(got[1]), len(got[2])}, "pages are full")
		require.Equal(t, labs, flat(got))
		got, _ = pages(t, h, tok, "/fhir/Observation?category=vital-signs")
		require.Empty(t, flat(got))
		got, _ = pages(t, h, tok, "/fhir/Patient/p1/Observation?_count=2")
		require.Equal(t, []string{"Observation/lab-0", "Observation/lab-2", "Observation/lab-4"}, flat(got))

		r := h.request("GET", "/fhir/Patient?_id=p2&_revinclude=Observation:subject", tok, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), `"id":"lab-1"`)
		require.NotContains(t, string(r.body), `"id":"vit-`)

		history := h.request("GET", "/fhir/Observation/_history?_count=2", tok, "")
		require.Equal(t, 200, history.status, string(history.body))
		entries := history.json(t)["entry"].([]any)
		require.Len(t, entries, 2, "a history page is full")
		for _, e := range entries {
			require.Contains(t, e.(map[string]any)["fullUrl"], "/Observation/lab-")
		}
		requireOutcome(t, h.request("GET", "/fhir/Observation/vit-03/_history", tok, ""), 404, "")

		// Two scopes on one type: either grants.
		both := h.token("system/" + labScope + " system/Observation.rs?category=vital-signs")
		_, total = pages(t, h, both, "/fhir/Observation?_total=accurate&_count=5")
		require.Equal(t, float64(30), total)

		// A patient/ granular scope: its category and its patient's compartment.
		mine := h.token("patient/"+labScope, forPatient("p1"))
		got, total = pages(t, h, mine, "/fhir/Observation?_total=accurate")
		require.Equal(t, []string{"Observation/lab-0", "Observation/lab-2", "Observation/lab-4"}, flat(got))
		require.Equal(t, float64(3), total)
		requireOutcome(t, h.request("GET", "/fhir/Observation/lab-1", mine, ""), 404, "")
	})
}

// TestGranularScopeWritesOnlyInsideItsGrant: a granular write scope may
// create and change only resources inside its query, before and after.
func TestGranularScopeWritesOnlyInsideItsGrant(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		seedCategories(t, h)
		tok := h.token("system/Observation.cruds?category=" + categorySystem + "|laboratory")

		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/lab-new", tok, observation("lab-new", "laboratory", "p1")).status)
		requireOutcome(t, h.request("PUT", "/fhir/Observation/vit-new", tok, observation("vit-new", "vital-signs", "p1")), 403, "outside")
		requireOutcome(t, h.request("POST", "/fhir/Observation", tok, strings.Replace(observation("x", "vital-signs", "p1"), `"id":"x",`, "", 1)), 403, "outside")
		// Moving a resource out of the grant, or taking one in, is refused.
		requireOutcome(t, h.request("PUT", "/fhir/Observation/lab-0", tok, observation("lab-0", "vital-signs", "p1")), 403, "outside")
		requireOutcome(t, h.request("PUT", "/fhir/Observation/vit-00", tok, observation("vit-00", "laboratory", "p1")), 403, "outside")
		requireOutcome(t, h.request("DELETE", "/fhir/Observation/vit-00", tok, ""), 403, "outside")
		require.Equal(t, 200, h.request("PUT", "/fhir/Observation/lab-0", tok, observation("lab-0", "laboratory", "p2")).status)

		all := h.token(allScopes)
		r := h.request("GET", "/fhir/Observation/vit-00", all, "")
		require.Equal(t, `W/"1"`, r.header.Get("ETag"), "the refused writes changed nothing")
		requireOutcome(t, h.request("GET", "/fhir/Observation/vit-new", all, ""), 404, "")
	})
}

// TestGranularScopeTheSearchTableCannotEvaluateGrantsNothing: fail closed.
func TestGranularScopeTheSearchTableCannotEvaluateGrantsNothing(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		seedCategories(t, h)
		tok := h.token("system/Observation.rs?no-such-param=laboratory")
		requireOutcome(t, h.request("GET", "/fhir/Observation/lab-0", tok, ""), 403, "")
		requireOutcome(t, h.request("GET", "/fhir/Observation", tok, ""), 403, "")
	})
}
