package api_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/fhirtest"
)

type capabilityStatement struct {
	ResourceType string   `json:"resourceType"`
	Status       string   `json:"status"`
	Kind         string   `json:"kind"`
	FhirVersion  string   `json:"fhirVersion"`
	Format       []string `json:"format"`
	Rest         []struct {
		Mode     string `json:"mode"`
		Security struct {
			Service []struct {
				Coding []struct{ System, Code string } `json:"coding"`
			} `json:"service"`
		} `json:"security"`
		Interaction []struct{ Code string } `json:"interaction"`
		Resource    []struct {
			Type         string                  `json:"type"`
			Versioning   string                  `json:"versioning"`
			ReadHistory  bool                    `json:"readHistory"`
			UpdateCreate bool                    `json:"updateCreate"`
			Interaction  []struct{ Code string } `json:"interaction"`
			SearchParam  []struct {
				Name, Type, Definition string
			} `json:"searchParam"`
			SearchInclude    []string `json:"searchInclude"`
			SearchRevInclude []string `json:"searchRevInclude"`
		} `json:"resource"`
	} `json:"rest"`
}

func (h *harness) capabilities(t *testing.T) capabilityStatement {
	t.Helper()
	r := h.request("GET", "/fhir/metadata", "", "")
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "application/fhir+json; charset=utf-8", r.header.Get("Content-Type"))
	fhirtest.RequireValidR4(t, r.body)
	var cs capabilityStatement
	require.NoError(t, json.Unmarshal(r.body, &cs))
	return cs
}

func codes(is []struct{ Code string }) []string {
	var out []string
	for _, i := range is {
		out = append(out, i.Code)
	}
	return out
}

// TestCapabilityStatement: public, valid R4, and says exactly what Herald
// serves for every R4 resource type.
func TestCapabilityStatement(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	cs := h.capabilities(t)
	require.Equal(t, "CapabilityStatement", cs.ResourceType)
	require.Equal(t, "active", cs.Status)
	require.Equal(t, "instance", cs.Kind)
	require.Equal(t, "4.0.1", cs.FhirVersion)
	require.Contains(t, cs.Format, "application/fhir+json")
	require.NotContains(t, strings.Join(cs.Format, " "), "xml", "Herald speaks JSON only")
	require.Len(t, cs.Rest, 1)
	rest := cs.Rest[0]
	require.Equal(t, "server", rest.Mode)
	require.ElementsMatch(t, []string{"transaction", "batch", "history-system"}, codes(rest.Interaction))
	require.Len(t, rest.Security.Service, 1)
	require.Equal(t, "SMART-on-FHIR", rest.Security.Service[0].Coding[0].Code)

	var types []string
	for _, res := range rest.Resource {
		types = append(types, res.Type)
		require.ElementsMatch(t,
			[]string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"},
			codes(res.Interaction), res.Type)
		require.Equal(t, "versioned-update", res.Versioning, res.Type)
		require.True(t, res.ReadHistory, res.Type)
		require.True(t, res.UpdateCreate, res.Type)
		params := map[string]string{}
		for _, p := range res.SearchParam {
			params[p.Name] = p.Type
		}
		require.Equal(t, "token", params["_id"], res.Type)
		require.Equal(t, "date", params["_lastUpdated"], res.Type)
	}
	require.Equal(t, fhir.ResourceTypes(), types, "every R4 resource type, each once, sorted")
	require.Len(t, types, 146, "R4 has 146 concrete resource types")
	require.Contains(t, types, "Subscription")
	require.NotContains(t, types, "DomainResource")
	require.NotContains(t, types, "Resource")
}

// TestCapabilityStatementMatchesRoutes: every interaction the statement
// claims for Patient, and every system interaction, works against the
// server (2xx, FHIR JSON); no claim leads to a missing route or a 405.
func TestCapabilityStatementMatchesRoutes(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		r := h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`)
		require.Equal(t, 201, r.status)
		id := r.json(t)["id"].(string)
		p := "/fhir/Patient/" + id
		body := func(active string) string {
			return `{"resourceType":"Patient","id":"` + id + `","active":` + active + `}`
		}

		// One request per interaction code; "delete" runs last.
		calls := map[string]struct {
			method, path, body string
			status             int
			headers            []string
		}{
			"create":           {"POST", "/fhir/Patient", `{"resourceType":"Patient"}`, 201, nil},
			"read":             {"GET", p, "", 200, nil},
			"vread":            {"GET", p + "/_history/1", "", 200, nil},
			"update":           {"PUT", p, body("true"), 200, nil},
			"history-instance": {"GET", p + "/_history", "", 200, nil},
			"history-type":     {"GET", "/fhir/Patient/_history", "", 200, nil},
			"patch":            {"PATCH", p, `[{"op":"add","path":"/gender","value":"other"}]`, 200, []string{"Content-Type: application/json-patch+json"}},
			"history-system":   {"GET", "/fhir/_history", "", 200, nil},
			"search-type":      {"GET", "/fhir/Patient?_id=" + id, "", 200, nil},
			"delete":           {"DELETE", p, "", 204, nil},
			"transaction":      {"POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/` + id + `"},"resource":` + body("false") + `}]}`, 200, nil},
			"batch":            {"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/` + id + `"}}]}`, 200, nil},
		}
		cs := h.capabilities(t)
		claimed := codes(cs.Rest[0].Interaction)
		for _, res := range cs.Rest[0].Resource {
			if res.Type == "Patient" {
				claimed = append(claimed, codes(res.Interaction)...)
			}
		}
		slices.SortStableFunc(claimed, func(a, b string) int {
			if a == "delete" {
				return 1
			}
			if b == "delete" {
				return -1
			}
			return 0
		})
		require.Len(t, claimed, len(calls))
		for _, code := range claimed {
			c, ok := calls[code]
			require.True(t, ok, "the statement claims %q, which this test does not know how to call", code)
			r := h.request(c.method, c.path, tok, c.body, c.headers...)
			require.Equal(t, c.status, r.status, "%s: %s %s: %s", code, c.method, c.path, r.body)
			if c.status != 204 {
				require.Equal(t, "application/fhir+json; charset=utf-8", r.header.Get("Content-Type"), code)
				fhirtest.RequireValidR4(t, r.body)
			}
		}

		// search-type is claimed for every type: each one answers
		for _, typ := range fhir.ResourceTypes() {
			r := h.request("GET", "/fhir/"+typ+"?_count=1", tok, "")
			require.Equal(t, 200, r.status, "%s: %s", typ, r.body)
		}

		// and what is not claimed is not served
		for _, c := range []struct{ name, method, path string }{
			{"search-system", "GET", "/fhir?_id=" + id},
		} {
			r := h.request(c.method, c.path, tok, "")
			require.GreaterOrEqual(t, r.status, 400, "%s is not claimed but answered %d", c.name, r.status)
			requireOutcome(t, r, r.status, "")
		}
	})
}

// TestPreferOperationOutcomeIsFHIRJSON: the OperationOutcome a write
// returns under Prefer: return=OperationOutcome is FHIR JSON like every
// other response.
func TestPreferOperationOutcomeIsFHIRJSON(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	r := h.request("POST", "/fhir/Patient", h.token(allScopes), `{"resourceType":"Patient"}`, "Prefer: return=OperationOutcome")
	require.Equal(t, 201, r.status)
	require.Equal(t, "application/fhir+json; charset=utf-8", r.header.Get("Content-Type"))
}

// TestCapabilityStatementClaimsOnlySearchedParams: every search parameter
// the statement claims for these types is applied by search under
// Prefer: handling=strict (which refuses parameters search would ignore),
// and the well-known ones of issue 14 are among them.
func TestCapabilityStatementClaimsOnlySearchedParams(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	claimed := map[string]map[string]string{}
	for _, res := range h.capabilities(t).Rest[0].Resource {
		claimed[res.Type] = map[string]string{}
		for _, p := range res.SearchParam {
			claimed[res.Type][p.Name] = p.Type
		}
	}
	for _, typ := range []string{"Patient", "Observation", "Encounter", "DiagnosticReport", "MedicationRequest"} {
		for name, ptype := range claimed[typ] {
			query := name + ":missing=true"
			if ptype == "composite" {
				continue // composites take no :missing; the matcher tests cover them
			}
			r := h.request("GET", "/fhir/"+typ+"?"+query, tok, "", "Prefer: handling=strict")
			require.Equal(t, 200, r.status, "%s?%s: %s", typ, query, r.body)
			require.Contains(t, string(r.body), url.QueryEscape(name+":missing")+"=true", "the self link keeps %s", query)
		}
	}
	require.Equal(t, "reference", claimed["Encounter"]["patient"])
	require.Equal(t, "token", claimed["Observation"]["code"])
	require.Equal(t, "date", claimed["Observation"]["date"])
	require.Equal(t, "string", claimed["Patient"]["family"])
	require.Equal(t, "quantity", claimed["Observation"]["value-quantity"])
	require.NotContains(t, claimed["Observation"], "_text", "not evaluated, not claimed")
}

// TestCapabilityStatementListsIncludes: searchInclude and searchRevInclude
// list what _include and _revinclude accept, from the same search table:
// every listed one is accepted by a search of the type, and a reference the
// type cannot be the target of is neither listed nor accepted.
func TestCapabilityStatementListsIncludes(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	byType := map[string]int{}
	cs := h.capabilities(t)
	for i, res := range cs.Rest[0].Resource {
		byType[res.Type] = i
	}
	observation := cs.Rest[0].Resource[byType["Observation"]]
	patient := cs.Rest[0].Resource[byType["Patient"]]
	require.Contains(t, observation.SearchInclude, "Observation:subject")
	require.Contains(t, patient.SearchRevInclude, "Observation:subject")
	require.NotContains(t, patient.SearchRevInclude, "Observation:device", "an Observation's device is never a Patient")
	for _, inc := range observation.SearchInclude {
		require.Equal(t, 200, h.request("GET", "/fhir/Observation?_include="+inc, tok, "").status, inc)
	}
	for _, inc := range patient.SearchRevInclude {
		require.Equal(t, 200, h.request("GET", "/fhir/Patient?_revinclude="+inc, tok, "").status, inc)
	}
	requireOutcome(t, h.request("GET", "/fhir/Patient?_revinclude=Observation:device", tok, ""), 400, "cannot refer")
}
