package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
)

// marker is in every hostile value, so the logs can be searched for echoes.
const marker = "zqhostile"

// hostileQueries are query strings (and form bodies) that must be refused
// with 400 before anything acts on them.
var hostileQueries = []struct{ name, query, mention string }{
	{"NUL in a value", "status=" + marker + "%00", ""},
	{"invalid UTF-8 in a value", "status=" + marker + "%ff", ""},
	{"control character in a value", "status=" + marker + "%01", ""},
	{"DEL in a value", "status=" + marker + "%7f", ""},
	{"C1 control in a value", "status=" + marker + "%c2%85", ""},
	{"line feed in a value", "status=" + marker + "%0aactive", ""},
	{"NUL in a name", marker + "%00=active", ""},
	{"control character in a name", marker + "%1b=active", ""},
	{"invalid UTF-8 in a name", marker + "%fe=active", ""},
	{"malformed escape", "status=" + marker + "%zz", ""},
	{"101 clauses", strings.TrimSuffix(strings.Repeat("_lastUpdated=ne2020-01-01&", 101), "&"), "100"},
	{"101 values", "status=" + strings.TrimSuffix(strings.Repeat(marker+",", 101), ","), "100"},
}

// TestHostileParametersAre400: on every kind of route that reads parameters
// (search on a type and on Subscription, by query and by form body,
// $status, $events, _history, the admin API), each hostile query string is
// a 400 OperationOutcome, never a 500, and no log line echoes it.
func TestHostileParametersAre400(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token("system/*.cruds herald.admin")
		_, _, id, _ := twoOwners(t, h)
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", tok, `{"resourceType":"Patient","id":"p1"}`).status)
		routes := []struct{ method, path string }{
			{"GET", "/fhir/Patient"},
			{"GET", "/fhir/Subscription"},
			{"FORM", "/fhir/Patient/_search"},
			{"FORM", "/fhir/Subscription/_search"},
			{"GET", "/fhir/Subscription/$status"},
			{"POST", "/fhir/Subscription/$status"},
			{"GET", "/fhir/Subscription/" + id + "/$status"},
			{"GET", "/fhir/Subscription/" + id + "/$events"},
			{"GET", "/fhir/Patient/p1/_history"},
			{"GET", "/fhir/Patient/p1"},
			{"GET", "/admin/clients"},
			{"GET", "/admin/endpoints"},
		}
		for _, rt := range routes {
			for _, q := range hostileQueries {
				t.Run(rt.method+" "+rt.path+" "+q.name, func(t *testing.T) {
					requireOutcome(t, h.sendParams(rt.method, rt.path, tok, q.query), 400, q.mention)
				})
			}
		}
		requireNoEcho(t, h.harness)
	})
}

// TestHostileOperationParameters: values in a Parameters body are held to
// the same rules as the query string.
func TestHostileOperationParameters(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		alice, _, id, _ := twoOwners(t, h)
		for _, v := range []string{`\u0000`, `\u0001`, `\u007f`, `\u0085`, `\n`} {
			body := fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"%s%s"}]}`, marker, v)
			requireOutcome(t, h.request("POST", "/fhir/Subscription/$status", alice, body), 400, "")
			body = fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueString":"%s%s"}]}`, marker, v)
			requireOutcome(t, h.request("POST", "/fhir/Subscription/"+id+"/$events", alice, body), 400, "")
		}
		requireNoEcho(t, h.harness)
	})
}

// TestHostileBundleSearch: a GET entry's query in a batch is refused like a
// query string (that entry 400, the batch itself answered).
func TestHostileBundleSearch(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token("system/*.cruds")
		for _, q := range hostileQueries {
			t.Run(q.name, func(t *testing.T) {
				body := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Subscription?%s"}}]}`, q.query)
				b, _ := h.postBundle(t, tok, body, "batch-response")
				require.Len(t, b.Entry, 1)
				require.True(t, strings.HasPrefix(b.Entry[0].Response.Status, "400"), b.Entry[0].Response.Status)
			})
		}
		requireNoEcho(t, h.harness)
	})
}

// sendParams sends query as the query string, or for FORM as a POST form body.
func (h *harness) sendParams(method, path, tok, query string) response {
	h.t.Helper()
	if method == "FORM" {
		return h.request("POST", path, tok, query, "Content-Type: application/x-www-form-urlencoded")
	}
	return h.request(method, path+"?"+query, tok, "")
}

// requireNoEcho fails when the server logged a 5xx or any hostile value.
func requireNoEcho(t *testing.T, h *harness) {
	t.Helper()
	logs := h.logs.String()
	require.Contains(t, logs, `"msg":"request"`, "the log capture is not wired")
	require.NotContains(t, logs, marker)
	require.NotContains(t, logs, `"status":5`)
}

// TestParameterLimitsAreInclusive: exactly the limit is served; the limits
// come from the server's options.
func TestParameterLimitsAreInclusive(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		hundredClauses := strings.TrimSuffix(strings.Repeat("_lastUpdated=ne2020-01-01&", 100), "&")
		require.Equal(t, 200, h.request("GET", "/fhir/Patient?"+hundredClauses, tok, "").status)
		hundredValues := "_id=" + strings.TrimSuffix(strings.Repeat("a,", 100), ",")
		require.Equal(t, 200, h.request("GET", "/fhir/Patient?"+hundredValues, tok, "").status)
		escaped := "family=" + strings.Repeat(`a\,`, 150) + "a"
		require.Equal(t, 200, h.request("GET", "/fhir/Patient?"+url.PathEscape(escaped), tok, "").status, "escaped commas do not separate values")
	})
	h := setup(t, stores[0].open(t), func(o *api.Options, _ *resources.Config) {
		o.ParamLimits = fhir.ParamLimits{Clauses: 3, Values: 2}
	})
	tok := h.token(allScopes)
	require.Equal(t, 200, h.request("GET", "/fhir/Patient?a=1&b=2&_id=x,y", tok, "").status)
	requireOutcome(t, h.request("GET", "/fhir/Patient?a=1&b=2&c=3&d=4", tok, ""), 400, "at most 3")
	requireOutcome(t, h.request("GET", "/fhir/Patient?_id=x,y,z", tok, ""), 400, "more than 2")
}
