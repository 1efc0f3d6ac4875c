package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
)

const (
	summaryPatient     = `{"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"},"active":true,"name":[{"family":"Lee"}],"gender":"female","birthDate":"1970-01-01","maritalStatus":{"text":"married"},"communication":[{"language":{"text":"en"}}]}`
	summaryObservation = `{"resourceType":"Observation","id":"o1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">weight</div>"},"status":"final","category":[{"text":"vital"}],"code":{"text":"weight"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":72,"unit":"kg"},"note":[{"text":"after lunch"}]}`
)

// TestSummary: _summary=true keeps the elements R4 marks isSummary (and the
// mandatory ones), text keeps text and the mandatory elements, data drops
// only text, each tagged SUBSETTED and valid R4, on read and search, both
// stores; false changes nothing; count is for searches only.
func TestSummary(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", tok, summaryPatient).status)
		require.Equal(t, 201, h.request("PUT", "/fhir/Observation/o1", tok, summaryObservation).status)

		shown := func(path string) string {
			t.Helper()
			r := h.request("GET", path, tok, "")
			require.Equal(t, 200, r.status, string(r.body))
			fhirtest.RequireValidR4(t, r.body)
			return string(r.body)
		}
		body := shown("/fhir/Patient/p1?_summary=true")
		for _, kept := range []string{`"name":[{"family":"Lee"}]`, `"gender":"female"`, `"birthDate":"1970-01-01"`, `"active":true`, `"SUBSETTED"`, `"versionId":"1"`} {
			require.Contains(t, body, kept)
		}
		for _, dropped := range []string{`"maritalStatus"`, `"communication"`, `"text":{"status"`} {
			require.NotContains(t, body, dropped)
		}

		body = shown("/fhir/Observation?_id=o1&_summary=true")
		require.Contains(t, body, `"valueQuantity":{"value":72,"unit":"kg"}`)
		require.Contains(t, body, `"subject":{"reference":"Patient/p1"}`)
		require.Contains(t, body, `"SUBSETTED"`)
		require.Contains(t, body, "_summary=true", "links keep _summary")
		require.NotContains(t, body, `"category"`)
		require.NotContains(t, body, `"note"`)
		require.NotContains(t, body, `"div"`)

		body = shown("/fhir/Observation/o1?_summary=text")
		require.Contains(t, body, `"div"`)
		require.Contains(t, body, `"status":"final"`, "mandatory")
		require.Contains(t, body, `"code":{"text":"weight"}`, "mandatory")
		require.NotContains(t, body, `"valueQuantity"`)
		require.NotContains(t, body, `"subject"`)

		body = shown("/fhir/Observation?_id=o1&_summary=data")
		require.NotContains(t, body, `"div"`)
		require.Contains(t, body, `"note":[{"text":"after lunch"}]`)
		require.Contains(t, body, `"category"`)
		require.Contains(t, body, `"SUBSETTED"`)

		require.Equal(t, shown("/fhir/Patient/p1"), shown("/fhir/Patient/p1?_summary=false"))
		require.NotContains(t, shown("/fhir/Patient/p1?_summary=false"), "SUBSETTED")

		requireOutcome(t, h.request("GET", "/fhir/Patient/p1?_summary=count", tok, ""), 400, "_summary")
		requireOutcome(t, h.request("GET", "/fhir/Patient?_summary=true&_elements=name", tok, ""), 400, "_elements")
		requireOutcome(t, h.request("GET", "/fhir/Patient/p1?_summary=short", tok, ""), 400, "_summary")
	})
}
