package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/notify"
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
	encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	secret         = "a-signing-secret-of-at-least-32-characters"
	baseURL        = "https://herald.example/fhir"
)

var (
	publisher = &auth.Principal{ClientID: "ehr", Scopes: auth.ParseScopes("system/*.cruds"), RawScopes: []string{"system/*.cruds"}}
	client    = &auth.Principal{ClientID: "app", Scopes: auth.ParseScopes("system/Subscription.crus system/*.rs"),
		RawScopes: []string{"system/Subscription.crus", "system/*.rs"}}
)

// eachStore runs fn against the embedded store and PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, s := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"memory", func(*testing.T) store.Store { return memory.New() }},
		{"postgres", func(t *testing.T) store.Store { return pgtest.New(t) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

// delivered is one request a receiver got.
type delivered struct {
	At     time.Time // arrival
	Path   string    // the request's URL path
	Header http.Header
	Body   []byte
	Bundle bundle
	Status int // what the receiver answered
}

// bundle is the part of a notification Bundle the tests look at.
type bundle struct {
	Type  string
	Event []int64 // event numbers, from the status Parameters
	Total int64   // events-since-subscription-start
	Kind  string  // handshake, heartbeat, event-notification
	State string  // the Subscription's status as reported
}

// receiver is a real HTTP subscriber endpoint that records every request
// and answers what answer says (200 when nil).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivered
	answer func(n int, d delivered) int // n counts requests from 0
	// retryAfter, when set, is sent as Retry-After with every non-2xx answer.
	retryAfter string
	hang       chan struct{} // closed at cleanup: releases hanging handlers
	signal     chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{hang: make(chan struct{}), signal: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() { close(r.hang); r.srv.Close() })
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivered{At: time.Now(), Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Bundle: parseBundle(body)}
	r.mu.Lock()
	n := len(r.got)
	status := http.StatusOK
	if r.answer != nil {
		status = r.answer(n, d)
	}
	d.Status = status
	r.got = append(r.got, d)
	retryAfter := r.retryAfter
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
	if status == 0 { // hang until the test ends
		<-r.hang
		return
	}
	if retryAfter != "" && (status < 200 || status > 299) {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
}

func (r *receiver) setAnswer(fn func(n int, d delivered) int) {
	r.mu.Lock()
	r.answer = fn
	r.mu.Unlock()
}

func (r *receiver) all() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// acked returns the requests answered 2xx.
func (r *receiver) acked() []delivered {
	var out []delivered
	for _, d := range r.all() {
		if d.Status >= 200 && d.Status < 300 {
			out = append(out, d)
		}
	}
	return out
}

// waitFor waits until cond holds for the recorded requests, or fails.
func (r *receiver) waitFor(t *testing.T, what string, cond func(got []delivered) bool) []delivered {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		got := r.all()
		if cond(got) {
			return got
		}
		select {
		case <-r.signal:
		case <-time.After(50 * time.Millisecond): // state may change without a request
		case <-deadline:
			t.Fatalf("timed out waiting for %s; got %d requests: %s", what, len(got), describe(got))
		}
	}
}

func describe(got []delivered) string {
	var parts []string
	for _, d := range got {
		parts = append(parts, fmt.Sprintf("%s%v→%d", d.Bundle.Kind, d.Bundle.Event, d.Status))
	}
	return strings.Join(parts, " ")
}

func parseBundle(body []byte) bundle {
	sum, err := notify.Summarize(body)
	if err != nil {
		return bundle{}
	}
	return bundle{Type: sum.BundleType, Event: sum.Numbers(), Total: sum.EventsSinceStart, Kind: string(sum.Type), State: sum.Status}
}

// env is one Herald without HTTP: the resource service with the
// Subscription rules and the topic engine, and a delivery engine.
type env struct {
	t       testing.TB
	st      store.Store
	svc     *resources.Service
	rules   *subscription.Rules
	admin   *subscription.AdminCache // as in herald serve: refreshed by topic.Follow
	lib     *topic.Library
	recv    *receiver
	metrics *delivery.Metrics
	mu      sync.Mutex
	stops   []func() // one per engine started
}

type option func(*delivery.Config)

// newEnv starts an engine on st with fast retries; the receiver's origin is
// allow-listed with allow_private_network (it listens on loopback).
func newEnv(t testing.TB, st store.Store, opts ...option) *env {
	t.Helper()
	ctx := context.Background()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	keys, err := secrets.NewKeyring(secrets.GenerateKey(""))
	require.NoError(t, err)
	e := &env{t: t, st: st, lib: lib, recv: newReceiver(t)}
	e.rules = &subscription.Rules{Topics: lib, Keys: keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: 720 * time.Hour, DefaultMaxPayload: "full-resource"}}
	e.svc = resources.New(resources.Config{Store: st, BaseURL: baseURL,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: lib, BaseURL: baseURL}).Hook},
		Rules:   typerules.Rules(e.rules, lib)})
	require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "recv", URLPrefix: e.recv.srv.URL + "/", AllowPrivateNetwork: true, CreatedAt: time.Now()}))
	e.admin = &subscription.AdminCache{Rules: e.rules, Generation: st.(topic.Followed).ConfigGeneration}
	e.follow()
	e.start(opts...)
	return e
}

func (e *env) engineConfig(opts ...option) delivery.Config {
	_, metrics := delivery.NewRegistry(e.st)
	e.metrics = metrics
	cfg := delivery.Config{
		Store: e.st, Rules: e.rules, Admin: e.admin, Topics: e.lib, BaseURL: baseURL,
		Sender:    webhook.New(webhook.Options{UserAgent: "Herald/test"}),
		Poll:      100 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryCap: 40 * time.Millisecond,
		RecoverAfter: time.Millisecond, // active again at the first success, unless a test says otherwise
		Lease:        5 * time.Second,
		Metrics:      metrics,
		Logger:       slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// follow keeps the topic library and the admin cache current, as herald
// serve does.
func (e *env) follow() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		topic.Follow(ctx, e.st.(topic.Followed), e.lib, time.Second, slog.New(slog.DiscardHandler), e.admin.Refresh)
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

func (e *env) start(opts ...option) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	eng := delivery.New(e.engineConfig(opts...))
	go func() { defer close(done); eng.Run(ctx) }()
	e.mu.Lock()
	e.stops = append(e.stops, func() { cancel(); <-done })
	e.mu.Unlock()
	e.t.Cleanup(e.halt)
}

// halt stops every engine started so far.
func (e *env) halt() {
	e.mu.Lock()
	stops := e.stops
	e.stops = nil
	e.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// subscribe creates a Subscription as the client and returns its id.
func (e *env) subscribe(mods ...func(m map[string]any)) string {
	e.t.Helper()
	res, err := e.svc.Create(context.Background(), client, "Subscription", []byte(subscriptionJSON(e.recv.srv.URL+"/hook", mods...)))
	require.NoError(e.t, err)
	return res.Version.ID
}

func subscriptionJSON(endpoint string, mods ...func(m map[string]any)) string {
	m := map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "delivery test",
		"criteria":     encounterStart,
		"_criteria": map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}}},
		"channel": map[string]any{
			"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
			"header":    []any{"X-Tenant: t1"},
			"extension": []any{map[string]any{"url": "https://herald.dev/fhir/StructureDefinition/signing-secret", "valueString": secret}},
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

// withContent sets the payload content.
func withContent(c string) func(map[string]any) {
	return func(m map[string]any) {
		channel(m)["_payload"] = map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": c}}}
	}
}

// withChannelExtension adds a backport channel extension: timeout
// (unsignedInt seconds) or max-count (positiveInt).
func withChannelExtension(name string, value int) func(map[string]any) {
	valueType := "valuePositiveInt"
	if name == "timeout" {
		valueType = "valueUnsignedInt"
	}
	return func(m map[string]any) {
		ch := channel(m)
		ch["extension"] = append(ch["extension"].([]any), map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-" + name, valueType: value})
	}
}

func withEndpoint(u string) func(map[string]any) {
	return func(m map[string]any) { channel(m)["endpoint"] = u }
}

// encounter writes Encounter/<id> in progress for patient p1 (fires
// encounter-start for the test Subscriptions when it is created).
func (e *env) encounter(id string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`, id)
	_, err := e.svc.Update(context.Background(), publisher, "Encounter", id, []byte(body), "")
	require.NoError(e.t, err)
}

// state reads the Subscription's state.
func (e *env) state(id string) store.SubscriptionState {
	e.t.Helper()
	st, err := e.st.Subscription(context.Background(), id)
	require.NoError(e.t, err)
	return st
}

// waitStatus waits until the Subscription has the status.
func (e *env) waitStatus(id, status string) store.SubscriptionState {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.state(id)
		if st.Status == status {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("Subscription %s stayed %s (%s), want %s", id, st.Status, st.Error, status)
		}
		select {
		case <-e.recv.signal:
		case <-time.After(20 * time.Millisecond): // status changes after the answer is recorded
		}
	}
}

// resource reads the stored Subscription resource as a map.
func (e *env) resource(id string) map[string]any {
	e.t.Helper()
	v, err := e.st.Current(context.Background(), "Subscription", id)
	require.NoError(e.t, err)
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(v.Body, &m))
	return m
}

// ackedEvents lists the event numbers of the acknowledged event
// notifications, in the order they arrived.
func ackedEvents(got []delivered) []int64 {
	var out []int64
	for _, d := range got {
		if d.Bundle.Kind == "event-notification" && d.Status >= 200 && d.Status < 300 {
			out = append(out, d.Bundle.Event...)
		}
	}
	return out
}

func kinds(got []delivered) []string {
	var out []string
	for _, d := range got {
		out = append(out, d.Bundle.Kind)
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

func storeMemory() store.Store { return memory.New() }

func pgStore(t testing.TB) store.Store { return pgtest.New(t) }
