package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Markers that must never show up in an error.
const (
	bodyMarker   = "BODY-MARKER"
	secretMarker = "SECRET-MARKER-0123456789abcdef0123456789"
	headerMarker = "HEADER-MARKER"
	queryMarker  = "QUERY-MARKER"
)

var testBody = []byte(`{"resourceType":"Bundle","id":"` + bodyMarker + `"}`)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// request is a signed request with a channel header, aimed at endpoint plus
// a query carrying a token.
func request(endpoint string) Request {
	return Request{
		Endpoint:  endpoint + "/hook?token=" + queryMarker,
		Body:      testBody,
		Headers:   []Header{{Name: "Authorization", Value: "Bearer " + headerMarker}},
		Secret:    secretMarker,
		MessageID: "msg-1",
		Timeout:   5 * time.Second,
	}
}

// sendError asserts err is a *SendError with the given reason that leaks
// nothing, and returns it.
func sendError(t *testing.T, err error, reason string) *SendError {
	t.Helper()
	require.Error(t, err)
	var se *SendError
	require.ErrorAs(t, err, &se)
	require.Equal(t, reason, se.Reason, "error: %v", err)
	for _, m := range []string{bodyMarker, secretMarker, headerMarker, queryMarker} {
		require.NotContains(t, err.Error(), m)
	}
	return se
}

type captured struct {
	Host   string
	Header http.Header
	Body   []byte
}

// recorder is a test endpoint that records every request and answers with
// status.
type recorder struct {
	*httptest.Server
	status int

	mu   sync.Mutex
	reqs []captured
}

func newRecorder(t *testing.T, status int) *recorder {
	t.Helper()
	rec := &recorder{status: status}
	rec.Server = httptest.NewServer(rec)
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, captured{Host: r.Host, Header: r.Header.Clone(), Body: body})
	rec.mu.Unlock()
	w.WriteHeader(rec.status)
}

func (rec *recorder) requests() []captured {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]captured(nil), rec.reqs...)
}

// port is the recorder's port, for URLs with other host names.
func (rec *recorder) port() string {
	return rec.URL[strings.LastIndexByte(rec.URL, ':')+1:]
}
