package api_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
)

// modes lists "mode Type/id" per entry of a searchset, sorted.
func modes(t *testing.T, r response) []string {
	t.Helper()
	require.Equal(t, 200, r.status, string(r.body))
	fhirtest.RequireValidR4(t, r.body)
	var out []string
	entries, _ := r.json(t)["entry"].([]any)
	for _, e := range entries {
		m := e.(map[string]any)
		res := m["resource"].(map[string]any)
		out = append(out, m["search"].(map[string]any)["mode"].(string)+" "+res["resourceType"].(string)+"/"+res["id"].(string))
	}
	slices.Sort(out)
	return out
}

// TestSearchIncludesAndTotals: _include, _revinclude and :iterate add each
// referenced or referring resource once, only as the token may read it;
// _total and _summary=count count every match, and links keep them.
func TestSearchIncludesAndTotals(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token(allScopes)
		for _, put := range []struct{ path, body string }{
			{"/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
			{"/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
			{"/fhir/Encounter/e1", `{"resourceType":"Encounter","id":"e1","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`},
			{"/fhir/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"}}`},
			{"/fhir/Observation/o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"` + h.base + `/Patient/p2"},"encounter":{"reference":"Encounter/e1"}}`},
		} {
			r := h.request("PUT", put.path, sys, put.body)
			require.Less(t, r.status, 300, string(r.body))
		}
		get := func(tok, query string) []string { return modes(t, h.request("GET", "/fhir/"+query, tok, "")) }

		require.Equal(t, []string{"include Patient/p1", "include Patient/p2", "match Observation/o1", "match Observation/o2"},
			get(sys, "Observation?_include=Observation:patient"))
		require.Equal(t, []string{"include Encounter/e1", "include Patient/p1", "match Observation/o1"},
			get(sys, "Observation?_id=o1&_include=Observation:subject:Patient&_include=Observation:encounter"))
		require.Equal(t, []string{"match Observation/o1"}, get(sys, "Observation?_id=o1&_include=Observation:subject:Group"))
		require.Equal(t, []string{"include Observation/o1", "match Patient/p1"}, get(sys, "Patient?_id=p1&_revinclude=Observation:subject"))
		require.Equal(t, []string{"include Encounter/e1", "include Observation/o1", "match Patient/p1"},
			get(sys, "Patient?_id=p1&_revinclude=Observation:subject&_include:iterate=Observation:encounter"))
		require.Equal(t, []string{"include Encounter/e1", "include Observation/o1", "include Observation/o2", "match Patient/p1"},
			get(sys, "Patient?_id=p1&_revinclude=Encounter:subject&_revinclude:iterate=Observation:encounter"))

		// Included resources are filtered by the token's read permission.
		p2 := h.token("patient/*.rs", forPatient("p2"))
		require.Equal(t, []string{"include Patient/p2", "match Observation/o2"}, get(p2, "Observation?_include=Observation:encounter&_include=Observation:patient"))
		obsOnly := h.token("system/Observation.rs")
		require.Equal(t, []string{"match Observation/o1", "match Observation/o2"}, get(obsOnly, "Observation?_include=Observation:patient"))

		// _total and _summary=count count every match; links keep them.
		r := h.request("GET", "/fhir/Observation?_total=accurate&_count=1&_include=Observation:patient", sys, "")
		require.EqualValues(t, 2, r.json(t)["total"])
		var next string
		for _, l := range r.json(t)["link"].([]any) {
			if link := l.(map[string]any); link["relation"] == "next" {
				next = link["url"].(string)
			}
		}
		u, err := url.Parse(next)
		require.NoError(t, err)
		require.Equal(t, []string{"accurate"}, u.Query()["_total"])
		require.Equal(t, []string{"Observation:patient"}, u.Query()["_include"])
		r = h.request("GET", "/fhir/Observation?_summary=count&subject=Patient/p1", sys, "")
		require.Equal(t, 200, r.status, string(r.body))
		fhirtest.RequireValidR4(t, r.body)
		require.EqualValues(t, 1, r.json(t)["total"])
		require.Nil(t, r.json(t)["entry"])
		require.EqualValues(t, 1, h.request("GET", "/fhir/Patient?_id=p1", sys, "").json(t)["total"], "one page: the total is known")

		requireOutcome(t, h.request("GET", "/fhir/Observation?_include=Observation:status", sys, ""), 400, "reference search parameter")
		requireOutcome(t, h.request("GET", "/fhir/Observation?_include=Patient:organization", sys, ""), 400, "searched type")
		requireOutcome(t, h.request("GET", "/fhir/Observation?_total=some", sys, ""), 400, "_total")
		requireOutcome(t, h.request("GET", "/fhir/Observation?_summary=brief", sys, ""), 400, "_summary")
	})
}

// TestSearchSort: _sort orders by one or more parameters (- descending;
// resources without a value last; ties by id), pages keep the order both
// ways, and the total is known.
func TestSearchSort(t *testing.T) {
	t.Parallel()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			testSearchSort(t, setup(t, st.open(t), ticking())) // writes a second apart: _lastUpdated never ties
		})
	}
}

func testSearchSort(t *testing.T, h *harness) {
	{
		tok := h.token(allScopes)
		for _, o := range []struct{ id, status, date string }{
			{"a", "final", "2024-03-01"}, {"b", "amended", "2024-01-01T10:00:00Z"}, {"c", "final", ""},
			{"d", "amended", "2024-02"}, {"e", "final", "2023-12-31T23:00:00-02:00"},
		} {
			date := ""
			if o.date != "" {
				date = `,"effectiveDateTime":"` + o.date + `"`
			}
			r := h.request("PUT", "/fhir/Observation/"+o.id, tok, `{"resourceType":"Observation","id":"`+o.id+`","status":"`+o.status+`","code":{"text":"x"}`+date+`}`)
			require.Less(t, r.status, 300, string(r.body))
		}
		walk := func(query string) []string {
			ids, last := h.walkPages(t, tok, "/fhir/Observation?"+query, "next", 2)
			back, _ := h.walkPages(t, tok, last, "previous", 2)
			require.Equal(t, ids, back, "previous links walk the same order back")
			return ids
		}
		require.Equal(t, []string{"a", "d", "b", "e", "c"}, walk("_sort=-date&_count=2"))
		require.Equal(t, []string{"e", "b", "d", "a", "c"}, walk("_sort=date&_count=2"))
		require.Equal(t, []string{"d", "b", "a", "e", "c"}, walk("_sort=status,-date&_count=2"))
		require.Equal(t, []string{"a", "e", "c"}, walk("_sort=-date&status=final&_count=2"))
		r := h.request("GET", "/fhir/Observation?_sort=-_lastUpdated&_count=1", tok, "")
		require.EqualValues(t, 5, r.json(t)["total"])
		require.Equal(t, []string{"e"}, entryIDs(t, r))
		requireOutcome(t, h.request("GET", "/fhir/Observation?_sort=colour", tok, ""), 400, "_sort")
		requireOutcome(t, h.request("GET", "/fhir/Observation?_sort=date&_offset=x", tok, ""), 400, "_offset")
	}
}

// TestCompartmentSearch: GET /Patient/{id}/{type} searches the resources
// in that patient's compartment, with every search parameter;
// a patient/ token reaches only its own compartment.
func TestCompartmentSearch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token(allScopes)
		for _, put := range []struct{ path, body string }{
			{"/fhir/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
			{"/fhir/Observation/o2", `{"resourceType":"Observation","id":"o2","status":"amended","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
			{"/fhir/Observation/o3", `{"resourceType":"Observation","id":"o3","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`},
		} {
			r := h.request("PUT", put.path, sys, put.body)
			require.Less(t, r.status, 300, string(r.body))
		}
		require.Equal(t, []string{"o1", "o2"}, entryIDs(t, h.request("GET", "/fhir/Patient/p1/Observation", sys, "")))
		r := h.request("GET", "/fhir/Patient/p1/Observation?status=final", sys, "")
		require.Equal(t, []string{"o1"}, entryIDs(t, r))
		require.Contains(t, string(r.body), h.base+"/Patient/p1/Observation?", "links stay in the compartment")
		require.Equal(t, []string{"o3"}, entryIDs(t, h.request("GET", "/fhir/Patient/p2/Observation", sys, "")))

		p2 := h.token("patient/*.rs", forPatient("p2"))
		require.Equal(t, []string{"o3"}, entryIDs(t, h.request("GET", "/fhir/Patient/p2/Observation", p2, "")))
		require.Empty(t, entryIDs(t, h.request("GET", "/fhir/Patient/p1/Observation", p2, "")))
		requireOutcome(t, h.request("GET", "/fhir/Patient/p1/Nothing", sys, ""), 404, "")
	})
}

// TestSearchElements: _elements keeps resourceType, id, meta and the named
// elements (a choice name keeps its typed forms), byte for byte, tags the
// resource SUBSETTED and stays in the links.
func TestSearchElements(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	r := h.request("PUT", "/fhir/Observation/o1", tok, `{"resourceType":"Observation","id":"o1","status":"final","_status":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"code":{"text":"x"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":1.50,"unit":"kg"}}`)
	require.Equal(t, 201, r.status, string(r.body))
	r = h.request("GET", "/fhir/Observation?_id=o1&_elements=status,value", tok, "")
	require.Equal(t, 200, r.status, string(r.body))
	body := string(r.body)
	require.Contains(t, body, `"status":"final","_status":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}`)
	require.Contains(t, body, `"valueQuantity":{"value":1.50,"unit":"kg"}`)
	require.Contains(t, body, `"SUBSETTED"`)
	require.Contains(t, body, `"versionId":"1"`)
	require.NotContains(t, body, `"subject"`)
	require.NotContains(t, body, `"code":{"text"`)
	require.Contains(t, body, "_elements=status%2Cvalue", "the self link keeps _elements")
	requireOutcome(t, h.request("GET", "/fhir/Observation?_elements=a.b", tok, ""), 400, "_elements")
}

// TestIncludeEqualsReadingEachReference: the resources an _include adds
// are exactly those its matches refer to that the token could read one by
// one (GET 200): several of one type are read together, and that read
// leaves out the same ones a read would (another patient's, deleted,
// missing, a type the token may not read).
func TestIncludeEqualsReadingEachReference(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token(allScopes)
		put := func(path, body string) {
			t.Helper()
			r := h.request("PUT", path, sys, body)
			require.Less(t, r.status, 300, string(r.body))
		}
		put("/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
		put("/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2"}`)
		for _, e := range []struct{ id, subject string }{{"e1", "p1"}, {"e2", "p2"}, {"e3", "p1"}, {"e4", "p1"}, {"e5", ""}} {
			subject := ""
			if e.subject != "" {
				subject = `,"subject":{"reference":"Patient/` + e.subject + `"}`
			}
			put("/fhir/Encounter/"+e.id, `{"resourceType":"Encounter","id":"`+e.id+`","status":"finished","class":{"code":"IMP"}`+subject+`}`)
		}
		require.Equal(t, 204, h.request("DELETE", "/fhir/Encounter/e3", sys, "").status)
		for i, enc := range []string{"e1", "e2", "e3", "e4", "e5", "missing", "e1"} {
			id := "o" + string(rune('0'+i))
			put("/fhir/Observation/"+id, `{"resourceType":"Observation","id":"`+id+`","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/`+enc+`"}}`)
		}

		for name, tok := range map[string]string{
			"system":       sys,
			"patient p1":   h.token("patient/*.rs", forPatient("p1")),
			"patient p2":   h.token("patient/*.rs", forPatient("p2")),
			"no Encounter": h.token("system/Observation.rs"),
		} {
			r := h.request("GET", "/fhir/Observation?_include=Observation:encounter&_count=100", tok, "")
			var matches int
			included := []string{}
			want := []string{}
			seen := map[string]bool{}
			require.Equal(t, 200, r.status, string(r.body))
			entries, _ := r.json(t)["entry"].([]any)
			for _, e := range entries {
				m := e.(map[string]any)
				res := m["resource"].(map[string]any)
				if m["search"].(map[string]any)["mode"] == "include" {
					included = append(included, res["resourceType"].(string)+"/"+res["id"].(string))
					continue
				}
				matches++
				ref := res["encounter"].(map[string]any)["reference"].(string)
				if !seen[ref] {
					seen[ref] = true
					if h.request("GET", "/fhir/"+ref, tok, "").status == 200 {
						want = append(want, ref)
					}
				}
			}
			slices.Sort(included)
			slices.Sort(want)
			require.Equal(t, want, included, name)
			switch name {
			case "system":
				require.Equal(t, []string{"Encounter/e1", "Encounter/e2", "Encounter/e4", "Encounter/e5"}, included)
			case "patient p1":
				require.Equal(t, 7, matches)
				require.Equal(t, []string{"Encounter/e1", "Encounter/e4"}, included, "not p2's, nor one outside every compartment")
			}
		}
	})
}
