package securitytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/internal/webhook"
	"github.com/herald-fhir/herald/topics"
)

const (
	hsSecret = "securitytest-hs256-secret-0123456789-abcdefghij"
	issuer   = "https://idp.securitytest.example"
	audience = "https://herald.securitytest.example/fhir"
	rsaKID   = "rsa-1"

	encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	newLabResult   = "https://herald.dev/fhir/SubscriptionTopic/new-lab-result"

	// hookBase is allow-listed (public, never dialled: the resolver knows
	// no such name).
	hookBase = "https://hooks.example.org/fhir/"

	maxBody = 1 << 20
)

// rsaKey is the identity provider's signing key (generated once: 2048-bit
// keys are slow to make).
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// logBuffer collects every log line of one server; safe for concurrent use.
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

// delivered is one request the receiver got.
type delivered struct {
	Header http.Header
	Body   []byte
	Path   string
}

// receiver is a real subscriber endpoint on loopback. It answers what
// answer says (200 when nil) and records every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivered
	answer func(n int, d delivered) int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(r.handler())
	t.Cleanup(r.srv.Close)
	return r
}

// newReceiverOn is a receiver listening on ln.
func newReceiverOn(t *testing.T, ln net.Listener) *receiver {
	r := &receiver{}
	r.srv = httptest.NewUnstartedServer(r.handler())
	_ = r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivered{Header: req.Header.Clone(), Body: body, Path: req.URL.Path}
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, d)
		answer := r.answer
		r.mu.Unlock()
		status := http.StatusOK
		if answer != nil {
			status = answer(n, d)
		}
		w.WriteHeader(status)
	})
}

func (r *receiver) all() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

func (r *receiver) setAnswer(fn func(n int, d delivered) int) {
	r.mu.Lock()
	r.answer = fn
	r.mu.Unlock()
}

// port is the receiver's TCP port.
func (r *receiver) port() string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(r.srv.URL, "http://"))
	return port
}

// waitFor polls until cond holds for the recorded requests, or fails.
func (r *receiver) waitFor(t *testing.T, what string, cond func(got []delivered) bool) []delivered {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.all()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; the receiver got %d requests", what, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resolve is the webhook client's DNS: "localhost" (and *.localhost) are
// looked up for real (/etc/hosts), rebind.test plays an attacker's name that
// resolves to loopback, and every other name fails at once, so nothing in
// this suite ever leaves the machine.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	case host == "rebind.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host (securitytest resolver)", Name: host, IsNotFound: true}
}

// harness is one Herald: API, verifier, services, delivery engine, receiver.
type harness struct {
	t     *testing.T
	st    store.Store
	srv   *httptest.Server
	base  string
	keys  *secrets.Keyring
	logs  *logBuffer
	recv  *receiver
	jwks  *httptest.Server
	hsKey []byte

	mu     sync.Mutex
	tokens []string // every bearer token sent
	hidden []string // strings that must never be logged
}

type config struct {
	jwksOnly   bool // no HS256 secret: RS256 through the JWKS only
	errorAfter int
	maxSubs    int
}

type option func(*config)

func jwksOnly(c *config) { c.jwksOnly = true }

func maxSubscriptions(n int) option { return func(c *config) { c.maxSubs = n } }

var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(*testing.T) store.Store { return memory.New() }},
	{"postgres", func(t *testing.T) store.Store { return pgtest.New(t) }},
}

// eachStore runs fn against the embedded store and PostgreSQL, in parallel.
func eachStore(t *testing.T, fn func(t *testing.T, h *harness), opts ...option) {
	t.Helper()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, s.open(t), opts...))
		})
	}
}

// onPostgres runs fn against PostgreSQL only (the production store), for
// the cases that wait for deliveries.
func onPostgres(t *testing.T, opts ...option) *harness {
	t.Helper()
	return setup(t, pgtest.New(t), opts...)
}

func setup(t *testing.T, st store.Store, opts ...option) *harness {
	t.Helper()
	cfg := config{errorAfter: 3, maxSubs: 1000}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	h := &harness{t: t, st: st, logs: &logBuffer{}, hsKey: []byte(hsSecret)}
	// Registered first, so it runs last: after the engine and servers stopped.
	t.Cleanup(h.checkLogs)
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The identity provider's JWKS.
	jwk, err := jwkset.NewJWKFromKey(&rsaKey().PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: rsaKID}})
	require.NoError(t, err)
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	require.NoError(t, err)
	h.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(h.jwks.Close)
	vc := auth.VerifierConfig{JWKSURL: h.jwks.URL, Issuer: issuer, Audience: audience, Logger: log.With("component", "auth")}
	if !cfg.jwksOnly {
		vc.HS256Secret = h.hsKey
	}
	verifier, err := auth.NewVerifier(t.Context(), vc)
	require.NoError(t, err)

	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	h.keys, err = secrets.NewKeyring(secrets.GenerateKey(""))
	require.NoError(t, err)
	h.recv = newReceiver(t)
	require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "hooks", URLPrefix: hookBase, CreatedAt: time.Now()}))
	// The receiver listens on loopback, so its entry allows private networks.
	require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "recv", URLPrefix: h.recv.srv.URL + "/", AllowPrivateNetwork: true, CreatedAt: time.Now()}))

	rules := &subscription.Rules{Topics: lib, Keys: h.keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: 720 * time.Hour, DefaultMaxPayload: "id-only", MaxSubscriptionsPerClient: cfg.maxSubs}}
	ops := &subscription.Operations{Store: st, Topics: lib, Rules: rules}
	// The handler needs the server's URL, so it is installed after Start; a
	// stray connection (a client of an earlier server on the same port)
	// gets 503 instead of racing with the installation.
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
	ops.BaseURL = h.base
	svc := resources.New(resources.Config{Store: st, BaseURL: h.base,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: lib, BaseURL: h.base}).Hook},
		Virtual: map[string]resources.Virtual{"Basic": &topic.BasicView{Library: lib}},
		Rules:   typerules.Rules(rules, lib)})
	registry, metrics := delivery.NewRegistry(st)
	handler.Store(api.New(api.Options{
		Resources: svc, Auth: verifier, Ready: st, Admin: st, Topics: lib, Operations: ops,
		Logger: log, BaseURL: h.base, MaxBodyBytes: maxBody, Version: "securitytest",
		Metrics: delivery.Handler(registry),
	}))

	engine := delivery.New(delivery.Config{
		Store: st, Rules: rules, Topics: lib, BaseURL: h.base,
		Sender:    webhook.New(webhook.Options{UserAgent: "Herald/securitytest", Resolver: resolve}),
		Poll:      100 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryCap: 50 * time.Millisecond,
		ErrorAfter: cfg.errorAfter,
		Lease:      5 * time.Second,
		Metrics:    metrics,
		Logger:     log.With("component", "delivery"),
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); engine.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// checkLogs fails the test when any bearer token the test sent, or any
// string it registered with hide, appears in the captured logs.
func (h *harness) checkLogs() {
	t := h.t
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Errorf("no request was logged: the log capture is not wired")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, tok := range h.tokens {
		if strings.Contains(logs, tok) {
			t.Errorf("a bearer token appears in the logs")
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 16 && strings.Contains(logs, part) {
				t.Errorf("part of a bearer token (%.8s…) appears in the logs", part)
			}
		}
	}
	for _, s := range h.hidden {
		if strings.Contains(logs, s) {
			t.Errorf("secret %.6s… appears in the logs", s)
		}
	}
}

// hide registers strings that must never appear in the logs.
func (h *harness) hide(s ...string) {
	h.mu.Lock()
	h.hidden = append(h.hidden, s...)
	h.mu.Unlock()
}

// token mints a valid HS256 token (right secret, issuer and audience).
func (h *harness) token(scope string, mods ...func(*auth.MintClaims)) string {
	h.t.Helper()
	c := auth.MintClaims{ClientID: "test-client", Scope: scope, TTL: time.Hour, Issuer: issuer, Audience: audience}
	for _, m := range mods {
		m(&c)
	}
	tok, err := auth.MintHS256(h.hsKey, c)
	require.NoError(h.t, err)
	return tok
}

func forPatient(id string) func(*auth.MintClaims) {
	return func(c *auth.MintClaims) { c.Patient = id }
}

func asClient(id string) func(*auth.MintClaims) {
	return func(c *auth.MintClaims) { c.ClientID = id }
}

// claims is a valid claim set for hand-signed tokens.
func claims(scope string) jwt.MapClaims {
	return jwt.MapClaims{
		"client_id": "test-client", "sub": "test-client", "scope": scope,
		"iss": issuer, "aud": audience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
}

// sign signs claims with method and key, with a kid header when kid != "".
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

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

// request sends one request through real HTTP. headers are "Name: value";
// the token, when not empty, goes in Authorization: Bearer.
func (h *harness) request(method, path, tok, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return h.send(method, path, tok, rd, headers...)
}

func (h *harness) send(method, path, tok string, body io.Reader, headers ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	require.NoError(h.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		h.mu.Lock()
		h.tokens = append(h.tokens, tok)
		h.mu.Unlock()
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

// requireOutcome asserts a refusal: the status and a valid R4
// OperationOutcome saying so.
func requireOutcome(t *testing.T, r response, status int, mention string) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, "application/fhir+json; charset=utf-8", r.header.Get("Content-Type"), string(r.body))
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	require.Equal(t, "OperationOutcome", m["resourceType"], string(r.body))
	fhirtest.RequireValidR4(t, r.body)
	if mention != "" {
		require.Contains(t, strings.ToLower(string(r.body)), strings.ToLower(mention))
	}
}

// entryIDs lists the ids of a Bundle's entry resources.
func entryIDs(t *testing.T, r response) []string {
	t.Helper()
	require.Equal(t, 200, r.status, string(r.body))
	var b struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(r.body, &b))
	ids := []string{}
	for _, e := range b.Entry {
		ids = append(ids, e.Resource.ID)
	}
	return ids
}

// count is how many current resources of a type the store holds.
func (h *harness) count(typ string) int {
	h.t.Helper()
	vs, err := h.st.Search(context.Background(), store.SearchQuery{Type: typ})
	require.NoError(h.t, err)
	return len(vs)
}

// states are all Subscription states.
func (h *harness) states() []store.SubscriptionState {
	h.t.Helper()
	sts, err := h.st.Subscriptions(context.Background(), store.SubscriptionFilter{})
	require.NoError(h.t, err)
	return sts
}

// state is one Subscription's state.
func (h *harness) state(id string) store.SubscriptionState {
	h.t.Helper()
	st, err := h.st.Subscription(context.Background(), id)
	require.NoError(h.t, err)
	return st
}

// endpoints are the allow-list prefixes.
func (h *harness) endpoints() []string {
	h.t.Helper()
	es, err := h.st.Endpoints(context.Background())
	require.NoError(h.t, err)
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s private=%v", e.URLPrefix, e.AllowPrivateNetwork))
	}
	return out
}

// history is every stored version of a resource, newest first; none when
// it does not exist.
func (h *harness) history(typ, id string) []store.Version {
	h.t.Helper()
	vs, err := h.st.History(context.Background(), store.HistoryQuery{Type: typ, ID: id})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	require.NoError(h.t, err)
	return vs
}

// waitStatus waits until the Subscription has the status; it fails at once
// if the Subscription reaches one of the never statuses instead.
func (h *harness) waitStatus(id, status string, never ...string) store.SubscriptionState {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := h.state(id)
		if st.Status == status {
			return st
		}
		if slices.Contains(never, st.Status) {
			h.t.Fatalf("Subscription %s became %s, want %s", id, st.Status, status)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Subscription %s stayed %s (%q), want %s", id, st.Status, st.Error, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allowEndpoint adds an allow-list entry through the admin API.
func (h *harness) allowEndpoint(prefix string, private bool) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"url_prefix": prefix, "allow_private_network": private})
	r := h.request("POST", "/admin/endpoints", h.token("herald.admin"), string(body), "Content-Type: application/json")
	require.Equal(h.t, 201, r.status, string(r.body))
}

// subscription is a backport Subscription JSON on encounter-start.
func subscriptionJSON(endpoint string, mods ...func(m map[string]any)) string {
	m := map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "security suite",
		"criteria":     encounterStart,
		"_criteria": map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}}},
		"channel": map[string]any{
			"type":     "rest-hook",
			"endpoint": endpoint,
			"payload":  "application/fhir+json",
			"extension": []any{
				map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout", "valueUnsignedInt": 2},
			},
			"_payload": map[string]any{"extension": []any{map[string]any{
				"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "id-only"}}},
		},
	}
	for _, mod := range mods {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func channel(m map[string]any) map[string]any { return m["channel"].(map[string]any) }

func withFilter(f string) func(map[string]any) {
	return func(m map[string]any) {
		m["_criteria"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueString"] = f
	}
}

func withTopic(url string) func(map[string]any) {
	return func(m map[string]any) { m["criteria"] = url }
}

func withContent(code string) func(map[string]any) {
	return func(m map[string]any) {
		channel(m)["_payload"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueCode"] = code
	}
}

func withHeaders(lines ...string) func(map[string]any) {
	return func(m map[string]any) { channel(m)["header"] = lines }
}

func withSecret(s string) func(map[string]any) {
	return func(m map[string]any) {
		ch := channel(m)
		ch["extension"] = append(ch["extension"].([]any), map[string]any{"url": "https://herald.dev/fhir/StructureDefinition/signing-secret", "valueString": s})
	}
}

// encounter is an in-progress Encounter of a patient (fires encounter-start
// when created).
func encounter(id, patient string, extra string) string {
	idMember := ""
	if id != "" {
		idMember = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{"resourceType":"Encounter",%s"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}%s}`, idMember, patient, extra)
}

// observation is a final Observation with a marker text, about a patient.
func observation(id, patient, marker string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":%q},"subject":{"reference":"Patient/%s"}}`, id, marker, patient)
}

// created asserts a 201 and returns the new resource's id.
func created(t *testing.T, r response) string {
	t.Helper()
	require.Equal(t, 201, r.status, string(r.body))
	return r.json(t)["id"].(string)
}
