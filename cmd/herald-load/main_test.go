package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/memory"
)

var testSecret = "test-secret-0123456789-abcdefghijklmnop"

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	require.Equal(t, 50*time.Millisecond, percentile(lat, 0.50))
	require.Equal(t, 90*time.Millisecond, percentile(lat, 0.90))
	require.Equal(t, 99*time.Millisecond, percentile(lat, 0.99))
	require.Equal(t, 100*time.Millisecond, percentile(lat, 1))
	require.Equal(t, 7*time.Millisecond, percentile([]time.Duration{7 * time.Millisecond}, 0.99))
	require.Zero(t, percentile(nil, 0.5))
}

func TestPatientsAreValidAndVaried(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 200 {
		body := appendPatient(nil, rng)
		r, err := fhir.Parse(body)
		require.NoError(t, err, "%s", body)
		require.Equal(t, "Patient", r.Type)
		require.NoError(t, fhir.Validate(r), "%s", body)
		seen[string(r.Member("name"))] = true
	}
	require.Greater(t, len(seen), 50, "names should vary")
}

func TestIDFromLocation(t *testing.T) {
	require.Equal(t, "abc-1", idFromLocation("http://127.0.0.1:8080/fhir/Patient/abc-1/_history/1"))
	require.Equal(t, "", idFromLocation(""))
}

func TestParseFlags(t *testing.T) {
	env := func(string) string { return "" }
	var stderr bytes.Buffer
	_, err := parseFlags([]string{"-url", "http://10.0.0.1:8080/fhir", "-token", "x"}, env, &stderr)
	require.ErrorContains(t, err, "loopback")
	_, err = parseFlags([]string{"-phases", "create,delete", "-token", "x"}, env, &stderr)
	require.ErrorContains(t, err, "unknown phase")
	_, err = parseFlags(nil, env, &stderr)
	require.ErrorContains(t, err, "token")
	o, err := parseFlags([]string{"-url", "http://localhost:1/fhir/", "-secret", testSecret, "-cpu", "a=pid:1,b=comm:postgres,c=cmdline:db"}, env, &stderr)
	require.NoError(t, err)
	require.Equal(t, "http://localhost:1/fhir", o.base.String())
	require.Equal(t, []string{"create", "read"}, o.phases)
	require.Equal(t, 32, o.concurrency)
	require.Len(t, o.cpu, 3)
	_, err = parseFlags([]string{"-token", "x", "-cpu", "a=pid:x"}, env, &stderr)
	require.Error(t, err)
}

// newServer is Herald's HTTP surface over the memory store.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{HS256Secret: []byte(testSecret)})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	st := memory.New()
	srv.Config.Handler = api.New(api.Options{
		Resources:    resources.New(resources.Config{Store: st, BaseURL: "http://" + srv.Listener.Addr().String() + "/fhir"}),
		Auth:         v,
		Ready:        st,
		BaseURL:      "http://" + srv.Listener.Addr().String() + "/fhir",
		MaxBodyBytes: 256 << 10, // a search record is a 128 KB transaction
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestRunAgainstHerald(t *testing.T) {
	srv := newServer(t)
	var stdout, stderr bytes.Buffer
	code, err := run(context.Background(), []string{
		"-url", srv.URL + "/fhir", "-c", "4", "-duration", "300ms", "-warmup", "50ms", "-ready-timeout", "5s",
		"-cpu", "me=pid:" + strconv.Itoa(os.Getpid()),
	}, func(k string) string {
		if k == "HERALD_LOAD_SECRET" {
			return testSecret
		}
		return ""
	}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Equal(t, 0, code, stdout.String()+stderr.String())
	out := stdout.String()
	require.Contains(t, out, "== phase create")
	require.Contains(t, out, "== phase read")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BENCH ") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 2, out)
	require.Contains(t, lines[0], "phase=create c=4 ")
	require.Contains(t, lines[0], " errors=0 ")
	require.Contains(t, lines[1], "phase=read c=4 ")
	require.Regexp(t, ` rps=[0-9.]+ .*p50_ms=[0-9.]+ .*p99_ms=[0-9.]+`, lines[1])
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		require.Contains(t, lines[1], " cpu_me_pct=")
		require.Contains(t, out, "CPU µs per request: me ")
	}
}

func TestReadOnlySeedsAndErrorsFail(t *testing.T) {
	srv := newServer(t)
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	code, err := run(context.Background(), []string{
		"-url", srv.URL + "/fhir", "-c", "2", "-duration", "100ms", "-warmup", "0s", "-phases", "read", "-seed", "10", "-secret", testSecret,
	}, env, &stdout, &stderr)
	require.NoError(t, err)
	require.Equal(t, 0, code, stdout.String()+stderr.String())
	require.Contains(t, stdout.String(), "seeding 10 Patients")

	// A token the server rejects: every request is an error, and the exit
	// status says so.
	stdout.Reset()
	bad, err := auth.MintHS256([]byte("another-secret-0123456789-abcdefghijkl"), auth.MintClaims{ClientID: "x", Scope: "system/*.cruds", TTL: time.Minute})
	require.NoError(t, err)
	code, err = run(context.Background(), []string{
		"-url", srv.URL + "/fhir", "-c", "2", "-duration", "100ms", "-warmup", "0s", "-phases", "create", "-token", bad,
	}, env, &stdout, &stderr)
	require.NoError(t, err)
	require.Equal(t, 1, code)
	require.Contains(t, stdout.String(), "HTTP 401")
}

func TestWaitReadyTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u, err := parseFlags([]string{"-url", srv.URL + "/fhir", "-token", "x"}, func(string) string { return "" }, &bytes.Buffer{})
	require.NoError(t, err)
	err = waitReady(context.Background(), srv.Client(), u.base, 2*time.Second) // long enough for one answer on a loaded machine
	require.ErrorContains(t, err, "503")
}
