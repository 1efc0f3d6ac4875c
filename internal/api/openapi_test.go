package api_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/memory"
)

const openAPIPath = "../../api/openapi.yaml"

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIPath)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	return doc
}

// ginParam matches gin's :param and *catchall path segments.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z_][A-Za-z0-9_]*)`)

// TestOpenAPIMatchesRoutes: api/openapi.yaml documents exactly the routes the
// server registers outside /fhir (whose CapabilityStatement is generated
// from the same route table), so the document and the router cannot drift.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	h := setup(t, memory.New())
	srv := h.api

	var registered []string
	for _, r := range srv.Routes() {
		// The console (/admin/ui) is HTML for browsers, documented in the README.
		if r.Path == "/fhir" || strings.HasPrefix(r.Path, "/fhir/") || r.Path == "/admin/ui" || strings.HasPrefix(r.Path, "/admin/ui/") {
			continue
		}
		registered = append(registered, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	require.Equal(t, registered, documented, "api/openapi.yaml and the routes registered outside /fhir differ")
	require.Contains(t, registered, "PUT /admin/clients/{client_id}")
}

// failingPinger makes /readyz answer 503.
type failingPinger struct{}

func (failingPinger) Ping(context.Context) error { return errors.New("store down") }

// exchange is one real request whose response is checked against the spec.
type exchange struct {
	method, path, token, body string
	headers                   []string
	status                    int
	// validRequest: the request itself must conform to the spec too.
	validRequest bool
}

// TestOpenAPIDescribesResponses sends real requests, successes and errors,
// and validates each request (when meant to be valid) and each response
// (status, headers and body) against api/openapi.yaml; every documented
// operation must get at least one validated 2xx response.
func TestOpenAPIDescribesResponses(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	// Admin errors are OperationOutcomes in application/fhir+json; kin-openapi
	// decodes "+json" media types as JSON.

	h := setup(t, memory.New())
	admin := h.adminToken()
	user := h.token(allScopes)
	epBody := `{"url_prefix": "HTTPS://Hooks.Example.COM:443/a/./b", "allow_private_network": true, "note": "n"}`
	clBody := `{"status": "active", "max_payload": "id-only", "scope_ceiling": "system/Encounter.rs"}`

	exchanges := []exchange{
		{method: "GET", path: "/healthz", status: 200, validRequest: true},
		{method: "GET", path: "/readyz", status: 200, validRequest: true},
		{method: "GET", path: "/metrics", status: 200, validRequest: true},

		{method: "GET", path: "/admin/endpoints", token: admin, status: 200, validRequest: true},
		{method: "POST", path: "/admin/endpoints", token: admin, body: epBody, status: 201, validRequest: true},
		{method: "GET", path: "/admin/endpoints", token: admin, status: 200, validRequest: true},
		{method: "POST", path: "/admin/endpoints", token: admin, body: epBody, status: 409, validRequest: true},
		{method: "POST", path: "/admin/endpoints", token: admin, body: `{"url_prefix": "https://u@x.example/"}`, status: 422, validRequest: true},
		{method: "POST", path: "/admin/endpoints", token: admin, body: `{"url_prefix": "https://x.example/", "x": 1}`, status: 400},
		{method: "POST", path: "/admin/endpoints", token: admin, body: epBody, headers: []string{"Content-Type: text/plain"}, status: 415},
		{method: "POST", path: "/admin/endpoints", token: admin, body: `{"note": "` + strings.Repeat("x", int(h.maxBody)) + `"}`, status: 413},
		{method: "POST", path: "/admin/allowlist/check", token: admin, body: `{"url": "https://hooks.example.com/herald/x"}`, status: 200, validRequest: true},
		{method: "POST", path: "/admin/allowlist/check", token: admin, body: `{"url": "https://elsewhere.example/"}`, status: 200, validRequest: true},
		{method: "POST", path: "/admin/allowlist/check", token: admin, body: `{"url": "https://u@x.example/"}`, status: 200, validRequest: true},
		{method: "POST", path: "/admin/allowlist/check", token: user, body: `{"url": "https://x.example/"}`, status: 403, validRequest: true},
		{method: "GET", path: "/admin/endpoints", status: 401},
		{method: "GET", path: "/admin/endpoints", token: user, status: 403, validRequest: true},
		{method: "DELETE", path: "/admin/endpoints/" + uuid.NewString(), token: admin, status: 404, validRequest: true},

		{method: "GET", path: "/admin/clients", token: admin, status: 200, validRequest: true},
		{method: "PUT", path: "/admin/clients/app-1", token: admin, body: clBody, status: 201, validRequest: true},
		{method: "PUT", path: "/admin/clients/app-1", token: admin, body: `{"status": "suspended", "max_payload": "empty"}`, status: 200, validRequest: true},
		{method: "PUT", path: "/admin/clients/app-1", token: admin, body: `{"status": "on", "max_payload": "empty"}`, status: 422},
		{method: "PUT", path: "/admin/clients/app-1", token: admin, body: clBody, headers: []string{"Content-Type: application/fhir+json"}, status: 415},
		{method: "PUT", path: "/admin/clients/app-1", token: admin, body: `{"status": "active"`, status: 400},
		{method: "PUT", path: "/admin/clients/app-1", token: user, body: clBody, status: 403, validRequest: true},
		{method: "GET", path: "/admin/clients", token: admin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/clients/app-1", token: admin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/clients/app-2", token: admin, status: 404, validRequest: true},
		{method: "GET", path: "/admin/clients/bad%20id", token: admin, status: 400},
		{method: "GET", path: "/admin/clients/app-1", status: 401},

		{method: "GET", path: "/admin/audit", token: admin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/audit?limit=1&before=3", token: admin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/audit?limit=0", token: admin, status: 400},
		{method: "GET", path: "/admin/audit", token: user, status: 403, validRequest: true},
	}
	ok2xx := map[string]bool{}
	for _, x := range exchanges {
		checkExchange(t, h, router, x, ok2xx)
	}

	// DELETE needs the id the create returned.
	var list []endpointBody
	requireJSON(t, h.adminRequest("GET", "/admin/endpoints", admin, ""), http.StatusOK, &list)
	require.Len(t, list, 1)
	checkExchange(t, h, router, exchange{method: "DELETE", path: "/admin/endpoints/" + list[0].ID, token: admin, status: 204, validRequest: true}, ok2xx)

	// Delivery: a Subscription with a logged failure.
	subs := setupSubscriptions(t, memory.New())
	id := createSubscription(t, subs, "app-a")
	logAttempt(t, subs.store, id, failure("http-status", 500))
	subAdmin := subs.adminToken()
	for _, x := range []exchange{
		{method: "GET", path: "/admin/subscriptions", token: subAdmin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/subscriptions?status=requested,error&client=app-a&limit=10&after=a", token: subAdmin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/subscriptions?status=on", token: subAdmin, status: 400},
		{method: "GET", path: "/admin/subscriptions", token: subs.token(allScopes), status: 403, validRequest: true},
		{method: "GET", path: "/admin/subscriptions/" + id + "/attempts", token: subAdmin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/subscriptions/" + id + "/attempts?outcome=failure&class=http-status&before=99&limit=5", token: subAdmin, status: 200, validRequest: true},
		{method: "GET", path: "/admin/subscriptions/" + id + "/attempts?class=boom", token: subAdmin, status: 400},
		{method: "GET", path: "/admin/subscriptions/nope/attempts", token: subAdmin, status: 404, validRequest: true},
		{method: "POST", path: "/admin/subscriptions/" + id + "/retry", token: subAdmin, status: 200, validRequest: true},
		{method: "POST", path: "/admin/subscriptions/nope/retry", token: subAdmin, status: 404, validRequest: true},
		{method: "POST", path: "/admin/subscriptions/" + id + "/reactivate", token: subAdmin, status: 409, validRequest: true},
	} {
		checkExchange(t, subs.harness, router, x, ok2xx)
	}
	setStatus(t, subs.store, id, "error")
	checkExchange(t, subs.harness, router, exchange{method: "POST", path: "/admin/subscriptions/" + id + "/reactivate", token: subAdmin, status: 200, validRequest: true}, ok2xx)
	setStatus(t, subs.store, id, "off")
	checkExchange(t, subs.harness, router, exchange{method: "POST", path: "/admin/subscriptions/" + id + "/retry", token: subAdmin, status: 409, validRequest: true}, ok2xx)
	checkExchange(t, subs.harness, router, exchange{method: "GET", path: "/admin/audit", token: subAdmin, status: 200, validRequest: true}, ok2xx)

	// 503 from /readyz.
	down := setup(t, memory.New(), func(o *api.Options, _ *resources.Config) { o.Ready = failingPinger{} })
	checkExchange(t, down, router, exchange{method: "GET", path: "/readyz", status: 503, validRequest: true}, ok2xx)

	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			require.True(t, ok2xx[method+" "+path], "no 2xx response of %s %s was validated", method, path)
		}
	}
}

func checkExchange(t *testing.T, h *harness, router routers.Router, x exchange, ok2xx map[string]bool) {
	t.Helper()
	name := x.method + " " + x.path
	res := h.adminRequest(x.method, x.path, x.token, x.body, x.headers...)
	require.Equal(t, x.status, res.status, "%s: %s", name, res.body)

	// The same request again, as an *http.Request for kin-openapi.
	var body *strings.Reader
	if x.body == "" {
		body = strings.NewReader("")
	} else {
		body = strings.NewReader(x.body)
	}
	req, err := http.NewRequest(x.method, h.srv.URL+x.path, body)
	require.NoError(t, err)
	if x.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if x.token != "" {
		req.Header.Set("Authorization", "Bearer "+x.token)
	}
	for _, hv := range x.headers {
		k, v, _ := strings.Cut(hv, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	route, params, err := router.FindRoute(req)
	require.NoError(t, err, "%s: not in api/openapi.yaml", name)
	// Explicitly documented, not just covered by "default".
	require.NotNil(t, route.Operation.Responses.Status(res.status), "%s → %d: status not documented in api/openapi.yaml", name, res.status)

	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, // an undocumented status fails
		MultiError:            true,
	}
	reqIn := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if x.validRequest {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), reqIn), "%s: request does not match the spec", name)
	}
	resIn := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn,
		Status:                 res.status,
		Header:                 res.header,
		Options:                opts,
	}
	resIn.SetBodyBytes(res.body)
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), resIn), "%s → %d: response does not match the spec: %s", name, res.status, res.body)
	if res.status >= 200 && res.status < 300 {
		ok2xx[route.Method+" "+route.Path] = true
	}
}
