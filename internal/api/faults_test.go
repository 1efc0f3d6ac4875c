package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// answerWait bounds how long a fault test waits for an answer; the
// configured deadlines are far shorter.
const answerWait = 10 * time.Second

func withRequestTimeout(d time.Duration) option {
	return func(o *api.Options, _ *resources.Config) { o.RequestTimeout = d }
}

// requestAsync sends a request and delivers its response, or an error
// when the server does not answer within answerWait.
func (h *harness) requestAsync(method, path, tok, body string) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
		if err != nil {
			out <- answer{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := (&http.Client{Timeout: answerWait}).Do(req)
		if err != nil {
			out <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		out <- answer{response: response{status: res.StatusCode, header: res.Header, body: b}, err: err}
	}()
	return out
}

type answer struct {
	response
	err error
}

// holdRowLock locks the head row of a resource on a connection of its own
// until the returned function commits.
func holdRowLock(t *testing.T, databaseURL, typ, id string) (release func()) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), databaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "BEGIN")
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT 1 FROM resources WHERE type = $1 AND id = $2 FOR UPDATE) locked`, typ, id).Scan(&n))
	require.Equal(t, 1, n)
	return func() {
		_, err := conn.Exec(context.Background(), "COMMIT")
		require.NoError(t, err)
	}
}

// A write held behind a row lock past the request deadline gets a 503
// OperationOutcome, and is not committed when the lock goes (finding 8).
func TestRequestDeadlineRollsBackAWriteHeldBehindARowLock(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.URL(t)
	st := pgtest.Open(t, databaseURL, postgres.WithMaxConns(4))
	h := setup(t, st, withRequestTimeout(500*time.Millisecond))
	tok := h.token(allScopes)
	r := h.request("PUT", "/fhir/Patient/held", tok, `{"resourceType":"Patient","id":"held","active":true}`)
	require.Equal(t, 201, r.status, string(r.body))

	release := holdRowLock(t, databaseURL, "Patient", "held")
	a := <-h.requestAsync("PUT", "/fhir/Patient/held", tok, `{"resourceType":"Patient","id":"held","active":false}`)
	release()
	require.NoError(t, a.err, "no answer while the row lock is held")
	r = a.response
	requireOutcome(t, r, 503, "rolled back")
	require.NotEmpty(t, r.header.Get("Retry-After"))

	r = h.request("GET", "/fhir/Patient/held/_history", tok, "")
	require.Equal(t, 200, r.status, string(r.body))
	require.Len(t, r.json(t)["entry"], 1, "the timed-out update was not committed")
}

// A database that drops the connection answers 503 with Retry-After, not
// 500 (finding 10).
func TestStoreUnavailableAnswers503WithRetryAfter(t *testing.T) {
	t.Parallel()
	app := "herald_fault_" + randomName()
	databaseURL := pgtest.URL(t)
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	st := pgtest.Open(t, u.String(), postgres.WithMaxConns(1))
	h := setup(t, st)
	tok := h.token(allScopes)
	require.Equal(t, 404, h.request("GET", "/fhir/Patient/p1", tok, "").status)

	admin, err := pgx.Connect(t.Context(), databaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	_, err = admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
	require.NoError(t, err)

	r := h.request("GET", "/fhir/Patient/p1", tok, "")
	requireOutcome(t, r, 503, "unavailable")
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// A client that gives up while its write waits behind a row lock is not a
// server failure: the write rolls back, and the request is logged as 499
// (client closed the request), not as a 500 error a monitor would alert on.
// Before, every such request was logged as an ERROR with status 500 (seen
// in the search benchmark: herald-load's timed-out searches).
func TestClientGoneIsNotAServerError(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.URL(t)
	st := pgtest.Open(t, databaseURL, postgres.WithMaxConns(4))
	h := setup(t, st)
	tok := h.token(allScopes)
	r := h.request("PUT", "/fhir/Patient/held", tok, `{"resourceType":"Patient","id":"held","active":true}`)
	require.Equal(t, 201, r.status, string(r.body))

	release := holdRowLock(t, databaseURL, "Patient", "held")
	req, err := http.NewRequest("PUT", h.srv.URL+"/fhir/Patient/held", strings.NewReader(`{"resourceType":"Patient","id":"held","active":false}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	_, err = (&http.Client{Timeout: 300 * time.Millisecond}).Do(req)
	require.Error(t, err, "answered while the row lock was held")

	deadline := time.Now().Add(answerWait)
	for !strings.Contains(h.logs.String(), `"method":"PUT","route":"/fhir/:type/:id","status":`+"499") {
		require.NotContains(t, h.logs.String(), `"status":500`, "a request its client gave up on was logged as a server error")
		require.True(t, time.Now().Before(deadline), "the abandoned request was never logged; logs:\n%s", h.logs.String())
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	release()
	r = h.request("GET", "/fhir/Patient/held/_history", tok, "")
	require.Equal(t, 200, r.status, string(r.body))
	require.Len(t, r.json(t)["entry"], 1, "the abandoned update was not committed")
}
