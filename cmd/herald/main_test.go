package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

const secret = "cmd-test-secret-0123456789abcdefghij"

// logBuffer collects output and lets a test wait for a pattern.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output matches re and returns the first submatch.
func (b *logBuffer) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-b.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s in output:\n%s", re, b.String())
		}
	}
}

var listening = regexp.MustCompile(`"msg":"herald listening","addr":"([^"]+)"`)

// server runs `herald serve` in-process until the test ends or stop is called.
type server struct {
	url       string
	stdout    *logBuffer
	stderr    *logBuffer
	stop      func() error // terminate and wait for run to return
	terminate func()       // what SIGTERM does, without waiting
}

func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	env["HERALD_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: newLogBuffer(), stderr: newLogBuffer()}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, s.stdout, s.stderr)
	}()
	var once sync.Once
	var runErr error
	s.terminate = cancel
	s.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = s.stop() })
	addr := s.stderr.waitFor(t, listening)
	s.url = "http://" + addr
	return s
}

func do(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

func TestServeRefusesToStartInsecurely(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "no authentication configured")
}

func TestServeReportsBadConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HERALD_DEV": "1", "HERALD_MAX_BODY_BYTES": "lots"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "HERALD_MAX_BODY_BYTES")
}

// TestDevModeServesWithPrintedTokens is what a newcomer does: `make run`,
// paste the printed token, create and read a resource, stop with a signal.
func TestDevModeServesWithPrintedTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"HERALD_DEV": "true"})
	require.Contains(t, s.stderr.String(), "ALL DATA IS LOST WHEN HERALD EXITS")
	token := s.stdout.waitFor(t, regexp.MustCompile(`export HERALD_CLIENT_TOKEN=(\S+)`))
	admin := s.stdout.waitFor(t, regexp.MustCompile(`export HERALD_ADMIN_TOKEN=(\S+)`))
	require.NotEqual(t, token, admin)

	status, body := do(t, "POST", s.url+"/fhir/Patient", token, `{"resourceType":"Patient","active":true}`)
	require.Equal(t, 201, status, string(body))
	var p struct{ ID string }
	require.NoError(t, json.Unmarshal(body, &p))
	status, _ = do(t, "GET", s.url+"/fhir/Patient/"+p.ID, token, "")
	require.Equal(t, 200, status)
	status, _ = do(t, "GET", s.url+"/healthz", "", "")
	require.Equal(t, 200, status)
	status, _ = do(t, "GET", s.url+"/readyz", "", "")
	require.Equal(t, 200, status)

	require.NoError(t, s.stop(), "a signal shuts down cleanly")
	require.Contains(t, s.stderr.String(), "herald stopped")
	require.NotContains(t, s.stderr.String(), token, "tokens never reach the log")
}

// TestPostgresKeepsDataAcrossRestart: PUT, GET, restart, GET again: every
// element and extension intact.
func TestPostgresKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":             pgtest.URL(t),
		"HERALD_AUTH_HS256_SECRET": secret,
		"HERALD_SECRET_KEY":        "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LXRlc3Q=",
	}
	token, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: "c", Scope: "system/*.cruds", TTL: time.Hour})
	require.NoError(t, err)
	body := `{"resourceType":"Patient","id":"keep","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"extension":[{"url":"http://example.org/w","valueDecimal":1.50}],"name":[{"given":["A",null],"_given":[null,{"id":"g2"}]}]}`

	first := startServer(t, env)
	status, _ := do(t, "PUT", first.url+"/fhir/Patient/keep", token, body)
	require.Equal(t, 201, status)
	status, before := do(t, "GET", first.url+"/fhir/Patient/keep", token, "")
	require.Equal(t, 200, status)
	require.NoError(t, first.stop())

	second := startServer(t, env)
	status, after := do(t, "GET", second.url+"/fhir/Patient/keep", token, "")
	require.Equal(t, 200, status)
	require.Equal(t, string(before), string(after))
	require.Contains(t, string(after), `"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}`)
	require.Contains(t, string(after), `"valueDecimal":1.50`)
}

func TestTokenCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := map[string]string{"HERALD_AUTH_HS256_SECRET": secret}
	err := run(context.Background(), []string{"token", "--client", "app1", "--scope", "system/Encounter.rs", "--patient", "p9", "--ttl", "5m"},
		func(k string) string { return env[k] }, &out, io.Discard)
	require.NoError(t, err)
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{HS256Secret: []byte(secret)})
	require.NoError(t, err)
	p, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "app1", p.ClientID)
	require.Equal(t, "p9", p.Patient)
	require.WithinDuration(t, time.Now().Add(5*time.Minute), p.ExpiresAt, time.Minute)

	err = run(context.Background(), []string{"token", "--client", "x", "--scope", "s"}, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "HERALD_AUTH_HS256_SECRET")
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := pgtest.UnmigratedURL(t)
	env := map[string]string{"DATABASE_URL": url}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate", "status"}, getenv, &out, io.Discard))
	require.Contains(t, out.String(), "pending")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"migrate", "up"}, getenv, &out, io.Discard))
	require.Contains(t, out.String(), "applied")
	require.NotContains(t, out.String(), "pending")

	err := run(context.Background(), []string{"migrate"}, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "DATABASE_URL")
}

// TestSecretKeyRotation: values sealed with an old key still open after the
// key is rotated (HERALD_SECRET_KEYS_PREVIOUS), so a client can update its
// Subscription by sending the redacted header back.
func TestSecretKeyRotation(t *testing.T) {
	t.Parallel()
	const keyA = "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LXRlc3Q="
	const keyB = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	env := map[string]string{"DATABASE_URL": pgtest.URL(t), "HERALD_AUTH_HS256_SECRET": secret, "HERALD_SECRET_KEY": keyA}
	mint := func(scope string) string {
		tok, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: "c1", Scope: scope, TTL: time.Hour})
		require.NoError(t, err)
		return tok
	}
	admin, client := mint("herald.admin"), mint("system/Subscription.cruds system/Encounter.rs")
	sub := `{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"https://herald.dev/fhir/SubscriptionTopic/encounter-start",
	 "channel":{"type":"rest-hook","endpoint":"https://hooks.example.org/a","payload":"application/fhir+json",
	 "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]},
	 "header":["Authorization: Bearer rotate-me"]}}`

	first := startServer(t, env)
	req, err := http.NewRequest("POST", first.url+"/admin/endpoints", strings.NewReader(`{"url_prefix":"https://hooks.example.org/"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 201, res.StatusCode)
	status, body := do(t, "POST", first.url+"/fhir/Subscription", client, sub)
	require.Equal(t, 201, status, string(body))
	var created struct{ ID string }
	require.NoError(t, json.Unmarshal(body, &created))
	status, stored := do(t, "GET", first.url+"/fhir/Subscription/"+created.ID, client, "")
	require.Equal(t, 200, status)
	require.NoError(t, first.stop())

	// Rotate: B is the key now, A only decrypts.
	env["HERALD_SECRET_KEY"], env["HERALD_SECRET_KEYS_PREVIOUS"] = keyB, keyA
	second := startServer(t, env)
	status, body = do(t, "PUT", second.url+"/fhir/Subscription/"+created.ID, client, string(stored))
	require.Equal(t, 200, status, "the redacted header is kept by opening it with the previous key: %s", body)
	require.NoError(t, second.stop())

	// Without the previous key the stored value cannot be opened, and the
	// answer says nothing about it.
	delete(env, "HERALD_SECRET_KEYS_PREVIOUS")
	env["HERALD_SECRET_KEY"] = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
	third := startServer(t, env)
	status, body = do(t, "PUT", third.url+"/fhir/Subscription/"+created.ID, client, string(stored))
	require.Equal(t, 500, status)
	require.NotContains(t, string(body), "rotate-me")
	require.NotContains(t, string(body), "decrypt")
	for _, s := range []*server{first, second, third} {
		require.NotContains(t, s.stderr.String(), "rotate-me", "secrets never reach the log")
		require.NotContains(t, s.stderr.String(), client, "tokens never reach the log")
	}
}
