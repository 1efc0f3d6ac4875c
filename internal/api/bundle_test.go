package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/resources"
)

// bundleResponse is the part of a response Bundle the tests read.
type bundleResponse struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status       string          `json:"status"`
			Location     string          `json:"location"`
			Etag         string          `json:"etag"`
			LastModified string          `json:"lastModified"`
			Outcome      json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

// postBundle sends a Bundle to the base, requires 200 and a valid R4
// response Bundle of the wanted type, and decodes it.
func (h *harness) postBundle(t *testing.T, tok, body, wantType string, headers ...string) (bundleResponse, response) {
	t.Helper()
	r := h.request("POST", "/fhir", tok, body, headers...)
	require.Equal(t, 200, r.status, string(r.body))
	fhirtest.RequireValidR4(t, r.body)
	var b bundleResponse
	require.NoError(t, json.Unmarshal(r.body, &b))
	require.Equal(t, "Bundle", b.ResourceType)
	require.Equal(t, wantType, b.Type)
	return b, r
}

func resourceField(t *testing.T, raw []byte, path ...string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v), string(raw))
	for _, p := range path {
		m, ok := v.(map[string]any)
		require.True(t, ok, "no %s in %s", p, raw)
		v = m[p]
	}
	return v
}

const patientURN = "urn:uuid:0f9b4a0e-2f55-4c3b-9a5f-6f1f0b2f7c11"

// TestTransactionResolvesURNs: a Patient and an Observation about it, linked
// by the Patient's urn:uuid fullUrl, are created together; the reference is
// rewritten to the new id and the response lists both in request order.
func TestTransactionResolvesURNs(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		body := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:7d0e7e51-5e1a-4a6b-8f3c-2b7d1c9e0a22","resource":{"resourceType":"Observation","status":"final","code":{"text":"bp"},"subject":{"reference":"` + patientURN + `"}},"request":{"method":"POST","url":"Observation"}},
			{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}
		]}`
		b, _ := h.postBundle(t, tok, body, "transaction-response")
		require.Len(t, b.Entry, 2)
		for i, typ := range []string{"Observation", "Patient"} {
			e := b.Entry[i]
			require.Equal(t, "201 Created", e.Response.Status)
			require.Equal(t, typ, resourceField(t, e.Resource, "resourceType"), "response entries are in request order")
			id := resourceField(t, e.Resource, "id").(string)
			require.Equal(t, typ+"/"+id+"/_history/1", e.Response.Location)
			require.Equal(t, h.base+"/"+typ+"/"+id, e.FullURL)
			require.Equal(t, `W/"1"`, e.Response.Etag)
			require.NotEmpty(t, e.Response.LastModified)
		}
		pid := resourceField(t, b.Entry[1].Resource, "id").(string)
		oid := resourceField(t, b.Entry[0].Resource, "id").(string)
		require.Equal(t, "Patient/"+pid, resourceField(t, b.Entry[0].Resource, "subject", "reference"))

		// what is stored says the same
		r := h.request("GET", "/fhir/Observation/"+oid, tok, "")
		require.Equal(t, 200, r.status)
		require.Equal(t, "Patient/"+pid, resourceField(t, r.body, "subject", "reference"))
		require.NotContains(t, string(r.body), "urn:uuid")
		require.Equal(t, 200, h.request("GET", "/fhir/Patient/"+pid, tok, "").status)
		require.Equal(t, 1, h.count("Patient"))
		require.Equal(t, 1, h.count("Observation"))

		// the Observation is in the new Patient's compartment
		ptok := h.token("patient/Observation.rs", forPatient(pid))
		r = h.request("GET", "/fhir/Observation", ptok, "")
		require.Equal(t, []string{oid}, entryIDs(t, r))
	})
}

// TestTransactionKeepsJSONExactly: number text, primitive extensions and
// number text in nested elements survive the urn rewrite byte for byte.
func TestTransactionKeepsJSONExactly(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		rest := `"status":"final","_status":{"extension":[{"url":"http://example.org/why","valueString":"checked"}]},` +
			`"code":{"text":"weight"},"subject":{"reference":"%s"},"valueQuantity":{"value":1.50,"unit":"kg"},` +
			`"extension":[{"url":"http://example.org/big","valueDecimal":12345678901234567890.000},{"url":"http://example.org/e","valueDecimal":1e2}],` +
			`"component":[{"code":{"text":"a"},"valueInteger":-0},{"code":{"text":"b"},"valueQuantity":{"value":2.0}}]}`
		obsBody := `{"resourceType":"Observation",` + fmt.Sprintf(rest, patientURN)
		body := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"resource":` + obsBody + `,"request":{"method":"POST","url":"Observation"}}]}`
		b, _ := h.postBundle(t, tok, body, "transaction-response")
		require.Len(t, b.Entry, 2)
		pid := resourceField(t, b.Entry[0].Resource, "id").(string)
		oid := resourceField(t, b.Entry[1].Resource, "id").(string)
		require.Contains(t, string(b.Entry[1].Resource), `"value":1.50`)
		require.Contains(t, string(b.Entry[1].Resource), `12345678901234567890.000`)

		r := h.request("GET", "/fhir/Observation/"+oid, tok, "")
		require.Equal(t, 200, r.status)
		lastUpdated := resourceField(t, r.body, "meta", "lastUpdated").(string)
		want := `{"resourceType":"Observation","id":"` + oid + `","meta":{"versionId":"1","lastUpdated":"` + lastUpdated + `"},` +
			fmt.Sprintf(rest, "Patient/"+pid)
		require.Equal(t, want, string(r.body))
		require.Equal(t, want, compactJSON(t, b.Entry[1].Resource), "the response entry is the stored resource")
	})
}

// TestTransactionIsAtomic: one failing entry fails the whole transaction
// with that entry's status, and nothing of it is stored.
func TestTransactionIsAtomic(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/keep", tok, `{"resourceType":"Patient","id":"keep","active":true}`).status)
		good := `{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + patientURN + `"}},"request":{"method":"POST","url":"Observation"}},
			{"resource":{"resourceType":"Patient","id":"keep","active":false},"request":{"method":"PUT","url":"Patient/keep"}},
			{"request":{"method":"DELETE","url":"Patient/keep2"}}`
		cases := []struct {
			name, bad string
			tok       string
			status    int
			mention   string
		}{
			{"invalid datatype", `{"resource":{"resourceType":"Patient","active":"yes"},"request":{"method":"POST","url":"Patient"}}`, tok, 422, "entry[4]"},
			{"unknown code", `{"resource":{"resourceType":"Patient","gender":"robot"},"request":{"method":"POST","url":"Patient"}}`, tok, 422, "entry[4]"},
			{"type mismatch", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Observation"}}`, tok, 400, "entry 4"},
			{"PUT id mismatch", `{"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/b"}}`, tok, 400, "entry 4"},
			{"no request", `{"resource":{"resourceType":"Patient"}}`, tok, 400, "entry 4"},
			{"unknown method", `{"resource":{"resourceType":"Patient"},"request":{"method":"PATCH","url":"Patient/keep3"}}`, tok, 400, "entry 4"},
			{"conditional create", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient?identifier=x"}}`, tok, 400, "entry 4"},
			{"If-Match mismatch", `{"resource":{"resourceType":"Patient","id":"keep3"},"request":{"method":"PUT","url":"Patient/keep3","ifMatch":"W/\"7\""}}`, tok, 412, "entry 4"},
			{"GET of nothing", `{"request":{"method":"GET","url":"Patient/nothing-here"}}`, tok, 404, "entry 4"},
			{"forbidden type for the token", `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}}`,
				h.token("system/Patient.cruds"), 403, "entry 1"},
		}
		for _, c := range cases {
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` + good + `,` + c.bad + `]}`
			r := h.request("POST", "/fhir", c.tok, body)
			t.Run(c.name, func(t *testing.T) {
				requireOutcome(t, r, c.status, c.mention)
			})
		}
		require.Equal(t, 1, h.count("Patient"), "nothing of a failed transaction is stored")
		require.Zero(t, h.count("Observation"))
		r := h.request("GET", "/fhir/Patient/keep", tok, "")
		require.Equal(t, `W/"1"`, r.header.Get("ETag"))
		require.Contains(t, string(r.body), `"active":true`)
		hist := h.request("GET", "/fhir/Patient/keep/_history", tok, "")
		require.Len(t, hist.json(t)["entry"], 1)

		// the same good entries alone do commit
		h.postBundle(t, tok, `{"resourceType":"Bundle","type":"transaction","entry":[`+good+`]}`, "transaction-response")
		require.Equal(t, 2, h.count("Patient"))
		require.Equal(t, 1, h.count("Observation"))
	})
}

// TestTransactionChangesEachResourceOnce: two entries changing one resource
// make the transaction invalid (400), however the URL is written.
func TestTransactionChangesEachResourceOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/a", tok, `{"resourceType":"Patient","id":"a"}`).status)
		put := func(url string) string {
			return `{"resource":{"resourceType":"Patient","id":"a","active":true},"request":{"method":"PUT","url":"` + url + `"}}`
		}
		del := `{"request":{"method":"DELETE","url":"Patient/a"}}`
		for name, entries := range map[string]string{
			"PUT twice":                  put("Patient/a") + "," + put("Patient/a"),
			"DELETE and PUT":             del + "," + put("Patient/a"),
			"DELETE twice":               del + "," + del,
			"absolute and relative URLs": put(h.base+"/Patient/a") + "," + put("Patient/a"),
		} {
			r := h.request("POST", "/fhir", tok, `{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`)
			t.Run(name, func(t *testing.T) { requireOutcome(t, r, 400, "once") })
		}
		r := h.request("GET", "/fhir/Patient/a", tok, "")
		require.Equal(t, `W/"1"`, r.header.Get("ETag"))

		// reading a resource the transaction also changes is fine
		b, _ := h.postBundle(t, tok, `{"resourceType":"Bundle","type":"transaction","entry":[`+put("Patient/a")+`,{"request":{"method":"GET","url":"Patient/a"}}]}`, "transaction-response")
		require.Equal(t, `W/"2"`, b.Entry[1].Response.Etag)
	})
}

// TestTransactionProcessingOrder: entries run DELETE, POST, PUT, GET, so a
// GET sees the transaction's writes, whatever order the entries are in; the
// response keeps the request order.
func TestTransactionProcessingOrder(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		for _, id := range []string{"d1", "u1"} {
			require.Equal(t, 201, h.request("PUT", "/fhir/Patient/"+id, tok, `{"resourceType":"Patient","id":"`+id+`"}`).status)
		}
		body := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"GET","url":"Patient/u1"}},
			{"request":{"method":"GET","url":"Patient?_id=d1,u1"}},
			{"request":{"method":"GET","url":"Patient/u1/_history/1"}},
			{"resource":{"resourceType":"Patient","id":"u1","active":false},"request":{"method":"PUT","url":"Patient/u1"}},
			{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},
			{"request":{"method":"DELETE","url":"Patient/d1"}},
			{"request":{"method":"GET","url":"Patient?_count=100"}}
		]}`
		b, _ := h.postBundle(t, tok, body, "transaction-response")
		require.Len(t, b.Entry, 7)
		var statuses []string
		for _, e := range b.Entry {
			statuses = append(statuses, e.Response.Status)
		}
		require.Equal(t, []string{"200 OK", "200 OK", "200 OK", "200 OK", "201 Created", "204 No Content", "200 OK"}, statuses)

		// entry 0: the read ran after the PUT
		require.Equal(t, false, resourceField(t, b.Entry[0].Resource, "active"))
		require.Equal(t, `W/"2"`, b.Entry[0].Response.Etag)
		// entry 1: the search ran after the DELETE
		search := resourceField(t, b.Entry[1].Resource, "entry").([]any)
		require.Len(t, search, 1)
		require.Equal(t, "u1", search[0].(map[string]any)["resource"].(map[string]any)["id"])
		// entry 2: vread still finds version 1
		require.Equal(t, `W/"1"`, b.Entry[2].Response.Etag)
		require.Nil(t, resourceField(t, b.Entry[2].Resource, "active"))
		// entry 6: the search sees the POST and not the deleted one
		all := resourceField(t, b.Entry[6].Resource, "entry").([]any)
		require.Len(t, all, 2)
		newID := resourceField(t, b.Entry[4].Resource, "id").(string)
		var ids []string
		for _, e := range all {
			ids = append(ids, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
		}
		require.ElementsMatch(t, []string{"u1", newID}, ids)

		requireOutcome(t, h.request("GET", "/fhir/Patient/d1", tok, ""), 410, "")
		// a GET of what the same transaction deletes fails it: GETs run last
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/d2", tok, `{"resourceType":"Patient","id":"d2"}`).status)
		r := h.request("POST", "/fhir", tok, `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"GET","url":"Patient/d2"}},{"request":{"method":"DELETE","url":"Patient/d2"}}]}`)
		requireOutcome(t, r, 410, "entry 0")
		require.Equal(t, 200, h.request("GET", "/fhir/Patient/d2", tok, "").status, "and so nothing was deleted")
	})
}

// TestBatch: each entry stands alone; failures are reported per entry with
// an OperationOutcome, and the rest is stored.
func TestBatch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/old", tok, `{"resourceType":"Patient","id":"old"}`).status)
		require.Equal(t, 200, h.request("PUT", "/fhir/Patient/old", tok, `{"resourceType":"Patient","id":"old","active":true}`).status)
		body := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient","active":"yes"},"request":{"method":"POST","url":"Patient"}},
			{"request":{"method":"GET","url":"Patient/old"}},
			{"request":{"method":"GET","url":"Patient/old/_history/1"}},
			{"request":{"method":"GET","url":"Patient?_id=old"}},
			{"request":{"method":"GET","url":"Patient/missing"}},
			{"resource":{"resourceType":"Patient","id":"old"},"request":{"method":"PUT","url":"Patient/old","ifMatch":"W/\"1\""}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}},
			{"request":{"method":"GET","url":"Foo/1"}},
			{"resource":{"resourceType":"Patient"}}
		]}`
		b, _ := h.postBundle(t, tok, body, "batch-response")
		require.Len(t, b.Entry, 10)
		wantStatus := []string{"201", "422", "200", "200", "200", "404", "412", "201", "400", "400"}
		for i, e := range b.Entry {
			require.True(t, strings.HasPrefix(e.Response.Status, wantStatus[i]+" "), "entry %d: %s", i, e.Response.Status)
			if wantStatus[i] >= "400" {
				require.NotEmpty(t, e.Response.Outcome, "entry %d has an outcome", i)
				require.Equal(t, "OperationOutcome", resourceField(t, e.Response.Outcome, "resourceType"))
				fhirtest.RequireValidR4(t, e.Response.Outcome)
				require.Nil(t, e.Resource)
			} else {
				require.Empty(t, e.Response.Outcome, "entry %d", i)
				require.NotEmpty(t, e.Resource, "entry %d", i)
			}
		}
		require.Contains(t, string(b.Entry[1].Response.Outcome), "Bundle.entry[1].resource.active")
		require.Equal(t, `W/"2"`, b.Entry[2].Response.Etag)
		require.Equal(t, true, resourceField(t, b.Entry[2].Resource, "active"))
		require.Equal(t, `W/"1"`, b.Entry[3].Response.Etag)
		require.Nil(t, resourceField(t, b.Entry[3].Resource, "active"))
		require.Equal(t, "searchset", resourceField(t, b.Entry[4].Resource, "type"))
		require.Len(t, resourceField(t, b.Entry[4].Resource, "entry"), 1)

		newID := resourceField(t, b.Entry[0].Resource, "id").(string)
		require.Equal(t, "Patient/"+newID+"/_history/1", b.Entry[0].Response.Location)
		require.Equal(t, 200, h.request("GET", "/fhir/Patient/"+newID, tok, "").status)
		require.Equal(t, 2, h.count("Patient"), "old and the one good POST")
		require.Equal(t, 1, h.count("Observation"))
		r := h.request("GET", "/fhir/Patient/old", tok, "")
		require.Equal(t, `W/"2"`, r.header.Get("ETag"), "the failed If-Match changed nothing")

		// an entry the token may not do fails alone
		b, _ = h.postBundle(t, h.token("system/Patient.cruds"), `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}},
			{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`, "batch-response")
		require.Equal(t, "403 Forbidden", b.Entry[0].Response.Status)
		require.Equal(t, "201 Created", b.Entry[1].Response.Status)
		require.Equal(t, 1, h.count("Observation"))
		require.Equal(t, 3, h.count("Patient"))
	})
}

// TestBundlePreferMinimal: Prefer: return=minimal leaves the written
// resources out of a transaction or batch response, but keeps the rest.
func TestBundlePreferMinimal(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		for _, typ := range []string{"transaction", "batch"} {
			body := `{"resourceType":"Bundle","type":"` + typ + `","entry":[
				{"resource":{"resourceType":"Patient","id":"m-` + typ + `"},"request":{"method":"PUT","url":"Patient/m-` + typ + `"}},
				{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`
			b, r := h.postBundle(t, tok, body, typ+"-response", "Prefer: return=minimal")
			require.Len(t, b.Entry, 2)
			for _, e := range b.Entry {
				require.Nil(t, e.Resource, string(r.body))
				require.Equal(t, "201 Created", e.Response.Status)
				require.NotEmpty(t, e.Response.Location)
				require.Equal(t, `W/"1"`, e.Response.Etag)
			}
			// without the preference the resources are there
			b, _ = h.postBundle(t, tok, strings.ReplaceAll(body, `"id":"m-`+typ+`"`, `"id":"m-`+typ+`","active":true`), typ+"-response")
			require.Contains(t, string(b.Entry[0].Resource), `"active":true`)
			require.Equal(t, "200 OK", b.Entry[0].Response.Status)
		}
	})
}

// TestBundleRequestErrors: what is not a batch or transaction is refused as a whole.
func TestBundleRequestErrors(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	for name, c := range map[string]struct {
		body    string
		status  int
		mention string
	}{
		"searchset":      {`{"resourceType":"Bundle","type":"searchset"}`, 400, "batch or transaction"},
		"no type":        {`{"resourceType":"Bundle"}`, 422, "Bundle.type"},
		"not a batch":    {`{"resourceType":"Bundle","type":"collection"}`, 400, "batch or transaction"},
		"entry not list": {`{"resourceType":"Bundle","type":"batch","entry":{}}`, 422, "Bundle.entry"},
		"not JSON":       {`{"resourceType":"Bundle",`, 400, "JSON"},
	} {
		r := h.request("POST", "/fhir", tok, c.body)
		t.Run(name, func(t *testing.T) { requireOutcome(t, r, c.status, c.mention) })
	}
	// an empty batch is a valid, empty answer
	b, _ := h.postBundle(t, tok, `{"resourceType":"Bundle","type":"batch"}`, "batch-response")
	require.Empty(t, b.Entry)
}

// TestTransactionDuplicateFullURL: fullUrl must be unique in a Bundle
// (bdl-7); with two entries claiming one urn a reference to it would be
// ambiguous, so the transaction is invalid.
func TestTransactionDuplicateFullURL(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		body := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},
			{"fullUrl":"` + patientURN + `","resource":{"resourceType":"Patient","active":false},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + patientURN + `"}},"request":{"method":"POST","url":"Observation"}}]}`
		requireOutcome(t, h.request("POST", "/fhir", tok, body), 400, "fullUrl")
		require.Zero(t, h.count("Patient"))
		require.Zero(t, h.count("Observation"))
	})
}

// TestBundleEntryCap (issue 17, finding 2): a batch or transaction has at
// most resources.DefaultMaxBundleEntries entries; more get 413 and nothing
// runs.
func TestBundleEntryCap(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	entries := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"request":{"method":"PUT","url":"Patient/cap%d"},"resource":{"resourceType":"Patient","id":"cap%d"}}`, i, i)
		}
		return strings.Join(parts, ",")
	}
	gets := strings.TrimSuffix(strings.Repeat(`{"request":{"method":"GET","url":"Patient/x"}},`, resources.DefaultMaxBundleEntries+1), ",")
	for _, typ := range []string{"batch", "transaction"} {
		body := `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + gets + `]}`
		requireOutcome(t, h.request("POST", "/fhir", tok, body), 413, "at most")
	}
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` + entries(3) + `]}`
	require.Equal(t, 200, h.request("POST", "/fhir", tok, body).status)
}
