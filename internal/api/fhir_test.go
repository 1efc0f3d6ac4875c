package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
)

func TestResourceLifecycle(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)

		// create
		r := h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient","active":true}`)
		require.Equal(t, 201, r.status, string(r.body))
		m := r.json(t)
		id := m["id"].(string)
		require.NotEmpty(t, id)
		require.Equal(t, h.base+"/Patient/"+id+"/_history/1", r.header.Get("Location"))
		require.Equal(t, `W/"1"`, r.header.Get("ETag"))
		require.NotEmpty(t, r.header.Get("Last-Modified"))
		require.Equal(t, "1", m["meta"].(map[string]any)["versionId"])
		fhirtest.RequireValidR4(t, r.body)

		// read
		got := h.request("GET", "/fhir/Patient/"+id, tok, "")
		require.Equal(t, 200, got.status)
		require.Equal(t, string(r.body), string(got.body))
		require.Equal(t, `W/"1"`, got.header.Get("ETag"))

		// update with a matching If-Match
		upd := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":false}`, id)
		r = h.request("PUT", "/fhir/Patient/"+id, tok, upd, `If-Match: W/"1"`)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, `W/"2"`, r.header.Get("ETag"))

		// a stale If-Match is refused and stores nothing
		r = h.request("PUT", "/fhir/Patient/"+id, tok, upd, `If-Match: W/"1"`)
		requireOutcome(t, r, 412, "If-Match")

		// vread of both versions
		v1 := h.request("GET", "/fhir/Patient/"+id+"/_history/1", tok, "")
		require.Equal(t, 200, v1.status)
		require.Contains(t, string(v1.body), `"active":true`)
		v2 := h.request("GET", "/fhir/Patient/"+id+"/_history/2", tok, "")
		require.Contains(t, string(v2.body), `"active":false`)
		requireOutcome(t, h.request("GET", "/fhir/Patient/"+id+"/_history/3", tok, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Patient/"+id+"/_history/x", tok, ""), 404, "")

		// delete, then read is 410 and history shows three versions
		r = h.request("DELETE", "/fhir/Patient/"+id, tok, "")
		require.Equal(t, 204, r.status)
		requireOutcome(t, h.request("GET", "/fhir/Patient/"+id, tok, ""), 410, "deleted")
		r = h.request("DELETE", "/fhir/Patient/"+id, tok, "")
		require.Equal(t, 204, r.status, "deleting again is idempotent")

		hist := h.request("GET", "/fhir/Patient/"+id+"/_history", tok, "")
		require.Equal(t, 200, hist.status)
		fhirtest.RequireValidR4(t, hist.body)
		b := hist.json(t)
		require.Equal(t, "history", b["type"])
		entries := b["entry"].([]any)
		require.Len(t, entries, 3)
		methods := []string{}
		for _, e := range entries {
			methods = append(methods, e.(map[string]any)["request"].(map[string]any)["method"].(string))
		}
		require.Equal(t, []string{"DELETE", "PUT", "POST"}, methods)
		require.Nil(t, entries[0].(map[string]any)["resource"])

		// re-create after delete with PUT
		r = h.request("PUT", "/fhir/Patient/"+id, tok, upd)
		require.Equal(t, 201, r.status, string(r.body))
		require.Equal(t, `W/"4"`, r.header.Get("ETag"))
	})
}

func TestUpdateCreatesWithClientID(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		r := h.request("PUT", "/fhir/Observation/obs-1", tok, `{"resourceType":"Observation","id":"obs-1","status":"final","code":{"text":"x"}}`)
		require.Equal(t, 201, r.status, string(r.body))
		require.Equal(t, h.base+"/Observation/obs-1/_history/1", r.header.Get("Location"))
		// If-Match on a resource that does not exist cannot match
		r = h.request("PUT", "/fhir/Observation/obs-2", tok, `{"resourceType":"Observation","id":"obs-2","status":"final","code":{"text":"x"}}`, `If-Match: W/"1"`)
		requireOutcome(t, r, 412, "")
		require.Equal(t, 1, h.count("Observation"))
	})
}

// TestJSONKeptExactly: everything but id and meta.versionId/lastUpdated comes
// back byte for byte: extensions with values of any type, primitive
// extensions, arrays of primitives with nulls beside their _ form, number text.
func TestJSONKeptExactly(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		body := `{"resourceType":"Patient","id":"exact","meta":{"profile":["http://example.org/p"],"versionId":"77"},` +
			`"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:10:00+01:00"}]},` +
			`"name":[{"family":"Ünïcödé","given":["Zoë"],"_given":[{"id":"g1"}]}],` +
			`"extension":[{"url":"http://example.org/weight","valueDecimal":1.50},{"url":"http://example.org/big","valueDecimal":12345678901234567890.000}],` +
			`"identifier":[{"system":"urn:oid:1.2.3","value":"x","_value":{"extension":[{"url":"http://example.org/v","valueDecimal":3.0e2}]}}],` +
			`"address":[{"line":["1 Main St",null],"_line":[null,{"extension":[{"url":"http://example.org/l","valueBoolean":true}]}]}]}`
		r := h.request("PUT", "/fhir/Patient/exact", tok, body)
		require.Equal(t, 201, r.status, string(r.body))
		got := h.request("GET", "/fhir/Patient/exact", tok, "")
		require.Equal(t, 200, got.status)
		lastUpdated := got.json(t)["meta"].(map[string]any)["lastUpdated"].(string)
		want := strings.Replace(body, `"meta":{"profile":["http://example.org/p"],"versionId":"77"}`,
			`"meta":{"versionId":"1","lastUpdated":"`+lastUpdated+`","profile":["http://example.org/p"]}`, 1)
		require.Equal(t, want, string(got.body))
	})
}

func TestSearch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		var ids []string
		for i := 0; i < 7; i++ {
			id := fmt.Sprintf("s%02d", i)
			ids = append(ids, id)
			r := h.request("PUT", "/fhir/Patient/"+id, tok, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id))
			require.Equal(t, 201, r.status)
		}
		h.request("DELETE", "/fhir/Patient/s06", tok, "")
		h.request("PUT", "/fhir/Group/s00", tok, `{"resourceType":"Group","id":"s00","type":"person","actual":true}`)

		// _id with comma = OR
		r := h.request("GET", "/fhir/Patient?_id=s01,s03,nope", tok, "")
		require.Equal(t, 200, r.status)
		fhirtest.RequireValidR4(t, r.body)
		require.Equal(t, []string{"s01", "s03"}, entryIDs(t, r))

		// paging with _count follows next links to the end, in id order, without deleted ones
		var seen []string
		next := "/fhir/Patient?_count=2"
		pages := 0
		for next != "" {
			r = h.request("GET", next, tok, "")
			require.Equal(t, 200, r.status, string(r.body))
			seen = append(seen, entryIDs(t, r)...)
			next = ""
			for _, l := range r.json(t)["link"].([]any) {
				link := l.(map[string]any)
				if link["relation"] == "next" {
					u, err := url.Parse(link["url"].(string))
					require.NoError(t, err)
					require.True(t, strings.HasPrefix(link["url"].(string), h.base))
					next = u.RequestURI()
				}
			}
			pages++
			require.Less(t, pages, 10)
		}
		require.Equal(t, ids[:6], seen)

		// _lastUpdated: everything is from today; nothing from the past year 2000
		r = h.request("GET", "/fhir/Patient?_lastUpdated=gt2000-01-01&_count=100", tok, "")
		require.Len(t, entryIDs(t, r), 6)
		r = h.request("GET", "/fhir/Patient?_lastUpdated=lt2000-01-01", tok, "")
		require.Empty(t, entryIDs(t, r))
		r = h.request("GET", "/fhir/Patient?_lastUpdated=ge2000-01-01&_lastUpdated=le2000-12-31", tok, "")
		require.Empty(t, entryIDs(t, r))

		// bad values are 400; unknown parameters are ignored unless handling=strict
		requireOutcome(t, h.request("GET", "/fhir/Patient?_lastUpdated=yesterday", tok, ""), 400, "_lastUpdated")
		requireOutcome(t, h.request("GET", "/fhir/Patient?_count=-1", tok, ""), 400, "_count")
		requireOutcome(t, h.request("GET", "/fhir/Patient?_id=a%20b", tok, ""), 400, "_id")
		r = h.request("GET", "/fhir/Patient?colour=x&_count=100", tok, "")
		require.Len(t, entryIDs(t, r), 6)
		require.NotContains(t, string(r.body), "colour=x", "the self link shows only the parameters applied")
		requireOutcome(t, h.request("GET", "/fhir/Patient?colour=x", tok, "", "Prefer: handling=strict"), 400, "colour")

		// POST _search with form parameters
		req := h.request("POST", "/fhir/Patient/_search", tok, "", "Content-Type: application/x-www-form-urlencoded")
		require.Equal(t, 200, req.status, string(req.body))
	})
}

func entryIDs(t *testing.T, r response) []string {
	t.Helper()
	var ids []string
	entries, _ := r.json(t)["entry"].([]any)
	for _, e := range entries {
		ids = append(ids, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	return ids
}

func TestPreferReturn(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	tok := h.token(allScopes)
	r := h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`, "Prefer: return=minimal")
	require.Equal(t, 201, r.status)
	require.Empty(t, r.body)
	require.NotEmpty(t, r.header.Get("Location"))
	r = h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`, "Prefer: return=OperationOutcome")
	require.Equal(t, 201, r.status)
	require.Equal(t, "OperationOutcome", r.json(t)["resourceType"])
	fhirtest.RequireValidR4(t, r.body)
}

// TestErrors: each bad request gets its status and an OperationOutcome, and
// stores nothing.
func TestErrors(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		big := `{"resourceType":"Patient","text":{"status":"generated","div":"` + strings.Repeat("x", int(h.maxBody)) + `"}}`
		cases := []struct {
			name, method, path, body string
			headers                  []string
			status                   int
			mention                  string
		}{
			{"malformed JSON", "POST", "/fhir/Patient", `{"resourceType":"Patient"`, nil, 400, "JSON"},
			{"not an object", "POST", "/fhir/Patient", `[1,2]`, nil, 400, "object"},
			{"type mismatch", "POST", "/fhir/Patient", `{"resourceType":"Observation","status":"final","code":{}}`, nil, 400, "does not match"},
			{"id mismatch", "PUT", "/fhir/Patient/a", `{"resourceType":"Patient","id":"b"}`, nil, 400, "does not match"},
			{"invalid id in URL", "PUT", "/fhir/Patient/a%20b", `{"resourceType":"Patient","id":"a b"}`, nil, 400, "id"},
			{"invalid id in body", "POST", "/fhir/Patient", `{"resourceType":"Patient","id":"a_b"}`, nil, 400, "id"},
			{"update without id", "PUT", "/fhir/Patient/a", `{"resourceType":"Patient"}`, nil, 400, "id"},
			{"duplicate member", "POST", "/fhir/Patient", `{"resourceType":"Patient","active":true,"active":false}`, nil, 400, "duplicate"},
			{"wrong datatype", "POST", "/fhir/Patient", `{"resourceType":"Patient","active":"yes"}`, nil, 422, "Patient.active"},
			{"unknown code", "POST", "/fhir/Patient", `{"resourceType":"Patient","gender":"robot"}`, nil, 422, "administrative-gender"},
			{"unknown type", "POST", "/fhir/Patients", `{"resourceType":"Patients"}`, nil, 404, "resource type"},
			{"unknown type read", "GET", "/fhir/Foo/1", "", nil, 404, "resource type"},
			{"unknown resource", "GET", "/fhir/Patient/nope", "", nil, 404, "not known"},
			{"unknown route", "GET", "/nowhere", "", nil, 404, ""},
			{"method not allowed", "PATCH", "/fhir/Patient", `{}`, nil, 405, "PATCH"},
			{"XML body", "POST", "/fhir/Patient", `<Patient/>`, []string{"Content-Type: application/fhir+xml"}, 415, "Content-Type"},
			{"form body", "POST", "/fhir/Patient", `a=b`, []string{"Content-Type: application/x-www-form-urlencoded"}, 415, ""},
			{"wrong fhirVersion", "POST", "/fhir/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type: application/fhir+json; fhirVersion=4.3"}, 415, "fhirVersion"},
			{"XML wanted", "GET", "/fhir/Patient", "", []string{"Accept: application/fhir+xml"}, 406, "Accept"},
			{"XML format", "GET", "/fhir/Patient?_format=xml", "", nil, 406, "_format"},
			{"body too large", "POST", "/fhir/Patient", big, nil, 413, "limit"},
			{"bad If-Match", "PUT", "/fhir/Patient/a", `{"resourceType":"Patient","id":"a"}`, []string{"If-Match: soon"}, 400, "If-Match"},
			{"bundle not batch", "POST", "/fhir", `{"resourceType":"Bundle","type":"collection"}`, nil, 400, "batch or transaction"},
			{"base takes bundles only", "POST", "/fhir", `{"resourceType":"Patient"}`, nil, 400, "Bundle"},
		}
		for _, c := range cases {
			r := h.request(c.method, c.path, tok, c.body, c.headers...)
			t.Run(c.name, func(t *testing.T) {
				requireOutcome(t, r, c.status, c.mention)
			})
		}
		require.Zero(t, h.count("Patient"), "failed requests store nothing")
		require.Zero(t, h.count("Observation"))
	})
}

// TestBodyLimitWithoutContentLength: a chunked body over the limit is cut
// off while reading.
func TestBodyLimitWithoutContentLength(t *testing.T) {
	t.Parallel()
	h := setup(t, stores[0].open(t))
	body := `{"resourceType":"Patient","text":{"status":"generated","div":"` + strings.Repeat("y", int(h.maxBody)*2) + `"}}`
	req, err := http.NewRequest("POST", h.base+"/Patient", &chunked{s: body})
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+h.token(allScopes))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 413, res.StatusCode)
	require.Zero(t, h.count("Patient"))
}

// chunked hides its length so the client sends Transfer-Encoding: chunked.
type chunked struct {
	s string
	i int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.i >= len(c.s) {
		return 0, io.EOF
	}
	n := copy(p, c.s[c.i:])
	c.i += n
	return n, nil
}
