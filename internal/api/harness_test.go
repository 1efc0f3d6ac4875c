package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

var testSecret = []byte("test-secret-0123456789-abcdefghijklmnop")

// stores are the store implementations every HTTP test runs against.
var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(t *testing.T) store.Store { return memory.New() }},
	{"postgres", func(t *testing.T) store.Store { return pgtest.New(t) }},
}

// eachStore runs fn once per store implementation, in parallel subtests.
func eachStore(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, s.open(t)))
		})
	}
}

type harness struct {
	t       *testing.T
	srv     *httptest.Server
	api     *api.Server // the handler srv serves
	base    string      // FHIR base URL
	store   store.Store
	maxBody int64
	logs    *logBuffer // everything the server logged
}

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// option adjusts the server a test gets.
type option func(*api.Options, *resources.Config)

func setup(t *testing.T, st store.Store, opts ...option) *harness {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{HS256Secret: testSecret})
	require.NoError(t, err)
	h := &harness{t: t, store: st, logs: &logBuffer{}}
	o := api.Options{
		Logger:       slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Auth:         v,
		Ready:        st,
		Admin:        st,
		MaxBodyBytes: 64 << 10,
		Version:      "test",
	}
	reg, _ := delivery.NewRegistry(st)
	o.Metrics = delivery.Handler(reg)
	rc := resources.Config{Store: st}
	for _, fn := range opts {
		fn(&o, &rc)
	}
	// The handler needs the server's URL, so it is installed after Start;
	// a connection that arrives first (a stray client of an earlier server
	// on the same port) gets 503 instead of racing with the installation.
	var handler atomic.Pointer[api.Server]
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if srv := handler.Load(); srv != nil {
			srv.ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	h.base = h.srv.URL + "/fhir"
	o.BaseURL = h.base
	rc.BaseURL = h.base
	o.Resources = resources.New(rc)
	h.api = api.New(o)
	handler.Store(h.api)
	h.maxBody = o.MaxBodyBytes
	return h
}

// token mints a real HS256 token with the given scopes.
func (h *harness) token(scope string, mods ...func(*auth.MintClaims)) string {
	c := auth.MintClaims{ClientID: "test-client", Scope: scope, TTL: time.Hour}
	for _, m := range mods {
		m(&c)
	}
	tok, err := auth.MintHS256(testSecret, c)
	require.NoError(h.t, err)
	return tok
}

func forPatient(id string) func(*auth.MintClaims) {
	return func(c *auth.MintClaims) { c.Patient = id }
}

const allScopes = "system/*.cruds"

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// request sends one request. headers are "Name: value" strings; a token is
// sent when tok is non-empty.
func (h *harness) request(method, path, tok, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	require.NoError(h.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for _, hv := range headers {
		k, v, _ := strings.Cut(hv, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// requireOutcome asserts an OperationOutcome error with the status, valid R4.
func requireOutcome(t *testing.T, r response, status int, mention string) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, "application/fhir+json; charset=utf-8", r.header.Get("Content-Type"))
	m := r.json(t)
	require.Equal(t, "OperationOutcome", m["resourceType"], string(r.body))
	fhirtest.RequireValidR4(t, r.body)
	if mention != "" {
		require.Contains(t, strings.ToLower(string(r.body)), strings.ToLower(mention))
	}
}

// count returns how many current resources of a type the store holds.
func (h *harness) count(typ string) int {
	h.t.Helper()
	vs, err := h.store.Search(context.Background(), store.SearchQuery{Type: typ})
	require.NoError(h.t, err)
	return len(vs)
}

// stripMeta removes the server-set id and meta for byte comparisons.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, b))
	return buf.String()
}
