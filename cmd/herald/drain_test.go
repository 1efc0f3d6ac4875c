package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Finding 11: on SIGTERM /readyz fails first, for HERALD_SHUTDOWN_DRAIN,
// while requests are still served; only then does the listener close.
func TestShutdownFailsReadinessBeforeClosingTheListener(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"HERALD_DEV": "true", "HERALD_SHUTDOWN_DRAIN": "2s"})
	require.Equal(t, 200, statusOf(t, s.url+"/readyz"))

	s.terminate()
	terminated := time.Now()
	waitUntil(t, 10*time.Second, "/readyz to fail after SIGTERM", func() bool {
		return statusOf(t, s.url+"/readyz") == http.StatusServiceUnavailable
	})
	require.Equal(t, 200, statusOf(t, s.url+"/fhir/metadata"), "requests are still served while draining")
	require.Equal(t, 200, statusOf(t, s.url+"/healthz"), "the process is alive while draining")

	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not stop within 30s of SIGTERM")
	}
	require.GreaterOrEqual(t, time.Since(terminated), 2*time.Second, "the listener stayed open for the drain period")
	_, err := http.Get(s.url + "/healthz")
	require.Error(t, err, "the listener is closed after the drain")
}

// statusOf GETs url and returns the status; a refused connection fails the
// test (the listener must not close before the drain ends).
func statusOf(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode
}
