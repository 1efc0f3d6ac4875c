package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/memory"
)

func withSearchesInFlight(n int) option {
	return func(o *api.Options, _ *resources.Config) { o.SearchesInFlight = n }
}

// TestSearchesBeyondTheLimitWaitInLine: with every search slot taken, a
// search, a compartment search and a history read wait, and get 503 with
// Retry-After and an OperationOutcome when their deadline passes; reads and
// writes do not wait for search slots; once a slot frees, searches run.
func TestSearchesBeyondTheLimitWaitInLine(t *testing.T) {
	h := setup(t, memory.New(), withSearchesInFlight(2), withRequestTimeout(300*time.Millisecond))
	tok := h.token(allScopes)
	created := h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient","id":"x"}`)
	require.Equal(t, 201, created.status, string(created.body))
	var patient struct{ ID string }
	require.NoError(t, json.Unmarshal(created.body, &patient))
	id := patient.ID

	release := h.api.HoldSearchSlotsForTest(2)
	for _, path := range []string{"/fhir/Patient?_count=5", "/fhir/Patient/" + id + "/Observation", "/fhir/Patient/_history", "/fhir/_history"} {
		r := h.request("GET", path, tok, "")
		require.Equal(t, 503, r.status, "%s: %s", path, r.body)
		require.NotEmpty(t, r.header.Get("Retry-After"), path)
		require.Contains(t, string(r.body), `"resourceType":"OperationOutcome"`, path)
		require.Contains(t, string(r.body), "busy with other searches", path)
	}
	r := h.request("POST", "/fhir/Patient/_search", tok, "_count=5", "Content-Type: application/x-www-form-urlencoded")
	require.Equal(t, 503, r.status, string(r.body))
	require.Equal(t, 200, h.request("GET", "/fhir/Patient/"+id, tok, "").status, "a read waited for a search slot")
	require.Equal(t, 201, h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient"}`).status, "a write waited for a search slot")

	release()
	r = h.request("GET", "/fhir/Patient?_count=5", tok, "")
	require.Equal(t, 200, r.status, string(r.body))
	require.Contains(t, string(r.body), id)
}

// TestSlowReaderDoesNotHoldASearchSlot: a search's slot is given back when
// its answer starts, so a client that reads a large answer slowly (or
// never) does not keep the other searches waiting until they time out.
func TestSlowReaderDoesNotHoldASearchSlot(t *testing.T) {
	const size = 1 << 20
	h := setup(t, memory.New(), withSearchesInFlight(1), withRequestTimeout(3*time.Second), func(o *api.Options, _ *resources.Config) {
		o.MaxBodyBytes = 2 * size
	})
	tok := h.token(allScopes)
	for range 12 { // 12 MiB to answer with, far beyond the socket buffers
		require.Eventually(t, func() bool {
			return h.request("POST", "/fhir/Observation", tok, parsedBody(size)).status == 201
		}, answerWait, time.Millisecond)
	}
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = fmt.Fprintf(conn, "GET /fhir/Observation?_count=100 HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(answerWait))
	buf := make([]byte, 64)
	k, err := io.ReadAtLeast(conn, buf, 12)
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 200", string(buf[:12]), "%q", buf[:k])

	// The one slot is free again while that answer waits to be read.
	r := h.request("GET", "/fhir/Observation?_count=1&_elements=status", tok, "")
	require.Equal(t, 200, r.status, "another search waited behind a slow reader: %s", r.body)
}
