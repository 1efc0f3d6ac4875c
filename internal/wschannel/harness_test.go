package wschannel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/internal/wschannel"
	"github.com/herald-fhir/herald/topics"
)

var hsSecret = []byte("ws-test-secret-0123456789-abcdefghijkl")

const encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"

func TestMain(m *testing.M) {
	// Heartbeats every second keep the heartbeat test short; the rule under
	// test is that one comes after heartbeatPeriod of silence.
	subscription.Limits.MinHeartbeat = time.Second
	os.Exit(m.Run())
}

// eachStore runs fn on the embedded store and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, open func() store.Store)) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) func() store.Store
	}{
		{"memory", func(*testing.T) func() store.Store {
			st := memory.New()
			return func() store.Store { return st } // one process: one store
		}},
		{"postgres", func(t *testing.T) func() store.Store {
			url := pgtestURL(t)
			return func() store.Store { return openPG(t, url) }
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

func pgtestURL(t testing.TB) string { return pgtest.URL(t) }

// openPG opens a store of its own (its pool, its LISTEN connection) on the
// schema at url, as another herald serve process would.
func openPG(t testing.TB, url string) store.Store {
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	return st
}

// instance is one Herald: the API and the websocket channel on one real
// listener, as herald serve wires them.
type instance struct {
	t       testing.TB
	st      store.Store
	srv     *httptest.Server
	base    string
	tokens  *wschannel.Tokens
	sockets *wschannel.Server
	// shutdown ends the sockets' Run as herald serve does at SIGTERM and
	// waits for it to return.
	shutdown func()
}

// sharedKey is HERALD_SECRET_KEY of every instance of a test run.
var sharedKey = secrets.GenerateKey("")

func newInstance(t testing.TB, st store.Store, limits wschannel.Limits) *instance {
	t.Helper()
	return newInstancePolling(t, st, limits, 200*time.Millisecond)
}

// newInstancePolling is newInstance whose sockets poll every poll; opts
// change the sockets' configuration further.
func newInstancePolling(t testing.TB, st store.Store, limits wschannel.Limits, poll time.Duration, opts ...func(*wschannel.Config)) *instance {
	t.Helper()
	ctx := context.Background()
	keys, err := secrets.NewKeyring(sharedKey)
	require.NoError(t, err)
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	verifier, err := auth.NewVerifier(ctx, auth.VerifierConfig{HS256Secret: hsSecret})
	require.NoError(t, err)
	in := &instance{t: t, st: st}
	var handler atomic.Pointer[api.Server]
	in.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	in.srv.Start()
	in.base = in.srv.URL + "/fhir"

	rules := &subscription.Rules{Topics: lib, Keys: keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: 720 * time.Hour, DefaultMaxPayload: "full-resource"}}
	admin := &subscription.AdminCache{Rules: rules, Generation: st.ConfigGeneration}
	svc := resources.New(resources.Config{Store: st, BaseURL: in.base,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: lib, BaseURL: in.base}).Hook},
		Rules:   typerules.Rules(rules, lib)})
	ops := &subscription.Operations{Store: st, Topics: lib, Rules: rules, BaseURL: in.base}
	in.tokens = &wschannel.Tokens{Keys: keys, TTL: time.Minute}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := wschannel.Config{Store: st, Rules: rules, Admin: admin, Topics: lib, Tokens: in.tokens,
		BaseURL: in.base, Limits: limits, Poll: poll, HoldFor: 3 * time.Second, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	in.sockets = wschannel.New(cfg)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		go topic.Follow(runCtx, st, lib, time.Second, slog.New(slog.DiscardHandler), admin.Refresh)
		in.sockets.Run(runCtx)
	}()
	handler.Store(api.New(api.Options{Resources: svc, Auth: verifier, Ready: st, Admin: st, Topics: lib, Operations: ops,
		BindingTokens: &wschannel.Issuer{Operations: ops, Tokens: in.tokens, BaseURL: in.base}, Websocket: in.sockets,
		BaseURL: in.base, MaxBodyBytes: 1 << 20, Version: "test", Logger: log}))
	in.shutdown = func() { stop(); <-done }
	t.Cleanup(func() { stop(); <-done; in.srv.Close() })
	return in
}

// clientToken is a SMART token of the subscribing app.
func clientToken(t testing.TB, client string) string {
	tok, err := auth.MintHS256(hsSecret, auth.MintClaims{ClientID: client, Scope: "system/Subscription.crus system/*.rs", TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

func publisherToken(t testing.TB) string {
	tok, err := auth.MintHS256(hsSecret, auth.MintClaims{ClientID: "ehr", Scope: "system/*.cruds", TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

type response struct {
	status int
	body   []byte
}

func (in *instance) do(method, path, tok, body string) response {
	in.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, in.srv.URL+path, rd)
	require.NoError(in.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(in.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(in.t, err)
	return response{status: res.StatusCode, body: b}
}

// subscribe creates a websocket Subscription of client to encounter-start
// for patient p1 and returns its id.
func (in *instance) subscribe(client, content string, heartbeat int) string {
	in.t.Helper()
	return in.subscribeFor(client, content, heartbeat, "p1")
}

// subscribeFor is subscribe for the Encounters of patient.
func (in *instance) subscribeFor(client, content string, heartbeat int, patient string) string {
	in.t.Helper()
	r := in.do("POST", "/fhir/Subscription", clientToken(in.t, client), subscriptionJSON(in.t, content, heartbeat, patient))
	require.Equal(in.t, http.StatusCreated, r.status, string(r.body))
	var m map[string]any
	require.NoError(in.t, json.Unmarshal(r.body, &m))
	return m["id"].(string)
}

// subscriptionJSON is a websocket Subscription to encounter-start for the
// Encounters of a patient (p1 unless given), with a heartbeat period when
// given.
func subscriptionJSON(t testing.TB, content string, heartbeatAndPatient ...any) string {
	heartbeat, patient := 0, "p1"
	if len(heartbeatAndPatient) == 2 {
		heartbeat, patient = heartbeatAndPatient[0].(int), heartbeatAndPatient[1].(string)
	}
	channel := map[string]any{"type": "websocket", "payload": "application/fhir+json",
		"_payload": map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": content}}}}
	if heartbeat > 0 {
		channel["extension"] = []any{map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": heartbeat}}
	}
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "websocket test", "criteria": encounterStart,
		"_criteria": map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/" + patient}}},
		"channel": channel,
	})
	require.NotEmpty(t, b)
	return string(b)
}

// encounter writes Encounter/<id> in progress for patient p1, which fires
// encounter-start.
func (in *instance) encounter(id string) {
	in.t.Helper()
	r := in.do("PUT", "/fhir/Encounter/"+id, publisherToken(in.t), encounterJSON(id, "p1"))
	require.Contains(in.t, []int{200, 201}, r.status, string(r.body))
}

func encounterJSON(id, patient string) string {
	return fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, id, patient)
}

// bindingToken calls $get-ws-binding-token and returns its parameters.
func (in *instance) bindingToken(client, query string) map[string][]string {
	in.t.Helper()
	r := in.do("GET", "/fhir/Subscription/$get-ws-binding-token"+query, clientToken(in.t, client), "")
	require.Equal(in.t, http.StatusOK, r.status, string(r.body))
	return parameters(in.t, r.body)
}

func parameters(t testing.TB, body []byte) map[string][]string {
	var p struct {
		ResourceType string
		Parameter    []map[string]any
	}
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, "Parameters", p.ResourceType)
	out := map[string][]string{}
	for _, prm := range p.Parameter {
		for k, v := range prm {
			if strings.HasPrefix(k, "value") {
				out[prm["name"].(string)] = append(out[prm["name"].(string)], v.(string))
			}
		}
	}
	return out
}

// wsClient is a real websocket client (the same library Herald uses).
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
}

func dial(t testing.TB, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	conn.SetReadLimit(1 << 22)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(c.t, c.conn.Write(ctx, websocket.MessageText, []byte(msg)))
}

// message is one notification as the client read it.
type message struct {
	notify.Summary
	body []byte
}

// next reads the next notification (failing after 15 s).
func (c *wsClient) next() message {
	c.t.Helper()
	m, err := c.read(15 * time.Second)
	require.NoError(c.t, err)
	return m
}

func (c *wsClient) read(wait time.Duration) (message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return message{}, err
	}
	sum, err := notify.Summarize(b)
	require.NoError(c.t, err, string(b))
	return message{Summary: sum, body: b}, nil
}

// nextOf reads until a notification of kind arrives, skipping heartbeats.
func (c *wsClient) nextOf(kind notify.Type) message {
	c.t.Helper()
	for {
		m := c.next()
		if m.Type == kind {
			return m
		}
		require.Equal(c.t, notify.Heartbeat, m.Type, "unexpected %s while waiting for %s", m.Type, kind)
	}
}

// closed waits for the server to close the socket and returns the status
// and reason of its close frame.
func (c *wsClient) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue // notifications sent before the close
		}
		var ce websocket.CloseError
		require.ErrorAs(c.t, err, &ce, "the server closes with a close frame")
		return ce.Code, ce.Reason
	}
	c.t.Fatal("the socket was not closed")
	return 0, ""
}
