package delivery_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store"
)

// The attempt log answers "why did Subscription/X not get event N": every
// failure class below is a real failing endpoint, on both stores.

const instance = "herald-test-1"

func withInstance(c *delivery.Config) { c.Instance = instance }

// waitAttempt waits until the Subscription's log holds an attempt that
// matches, and returns it.
func waitAttempt(t *testing.T, st store.Store, id, what string, match func(store.Attempt) bool) store.Attempt {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		as, err := st.Attempts(context.Background(), store.AttemptQuery{SubscriptionID: id})
		require.NoError(t, err)
		for _, a := range as {
			if match(a) {
				return a
			}
		}
		select {
		case <-time.After(20 * time.Millisecond): // the log changes without telling anyone
		case <-deadline:
			t.Fatalf("no attempt %s for Subscription/%s; the log: %+v", what, id, as)
		}
	}
}

func failedWith(class string) func(store.Attempt) bool {
	return func(a store.Attempt) bool { return a.Outcome == store.AttemptFailure && a.Class == class }
}

// requireNoHTTP: nothing came back from the subscriber.
func requireNoHTTP(t *testing.T, a store.Attempt) {
	t.Helper()
	require.Zero(t, a.StatusCode)
	require.Zero(t, a.ResponseBytes)
	require.Empty(t, a.ResponseBody)
}

// TestAttemptLogEventFailures: the subscriber acknowledged the handshake,
// then event 1's notification failed; the log names the event and why.
func TestAttemptLogEventFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, class string
		status      int
		answer      int // the receiver's answer to event notifications; 0 hangs
	}{
		{"timeout", "timeout", 0, 0},
		{"redirect", "redirect", http.StatusFound, http.StatusFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, st store.Store) {
				e := newEnv(t, st, withInstance)
				id := e.subscribe(withChannelExtension("timeout", 1))
				e.waitStatus(id, "active")
				e.recv.setAnswer(func(n int, d delivered) int {
					if d.Bundle.Kind == "event-notification" {
						return c.answer
					}
					return http.StatusOK
				})
				e.encounter("a")
				a := waitAttempt(t, st, id, c.class, failedWith(c.class))
				require.Equal(t, "event-notification", a.Kind)
				require.Equal(t, [2]int64{1, 1}, [2]int64{a.FirstEvent, a.LastEvent}, "the event it carried")
				require.Equal(t, c.status, a.StatusCode)
				require.Equal(t, instance, a.Instance)
				require.Equal(t, "rest-hook", a.Channel)
				if c.class == "timeout" {
					require.GreaterOrEqual(t, a.Latency, 900*time.Millisecond, "the 1 s channel timeout")
				}
				ok := waitAttempt(t, st, id, "handshake success", func(a store.Attempt) bool { return a.Kind == "handshake" })
				require.Equal(t, store.AttemptSuccess, ok.Outcome)
				require.Equal(t, http.StatusOK, ok.StatusCode)
				require.Empty(t, ok.Class)
			})
		})
	}
}

// TestAttemptLogStatusAndBody: a 500 keeps its status and the first 1 KiB
// of its body, as valid UTF-8, and how much was read.
func TestAttemptLogStatusAndBody(t *testing.T) {
	t.Parallel()
	body := "upstream exploded: \xff\x00 " + strings.Repeat("é", 1000) // invalid UTF-8 and NUL, then 2,000 bytes
	eachStore(t, func(t *testing.T, st store.Store) {
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if parseBundle(b).Kind == "handshake" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(failing.Close)
		e := newEnv(t, st)
		require.NoError(t, st.AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "failing", URLPrefix: failing.URL + "/", AllowPrivateNetwork: true, CreatedAt: time.Now()}))
		id := e.subscribe(withEndpoint(failing.URL + "/hook"))
		e.waitStatus(id, "active")
		e.encounter("a")
		e.encounter("b")
		a := waitAttempt(t, st, id, "http-status", failedWith("http-status"))
		require.Equal(t, http.StatusInternalServerError, a.StatusCode)
		require.Equal(t, "event-notification", a.Kind)
		require.Equal(t, int64(1), a.FirstEvent)
		require.Equal(t, int64(len(body)), a.ResponseBytes)
		require.True(t, utf8.ValidString(a.ResponseBody))
		require.LessOrEqual(t, len(a.ResponseBody), store.MaxAttemptBody)
		require.True(t, strings.HasPrefix(a.ResponseBody, "upstream exploded: \uFFFD\uFFFD éé"), "invalid bytes and NUL replaced: %q", a.ResponseBody[:40])
		require.Positive(t, a.Latency)
	})
}

// TestAttemptLogTransportFailures: endpoints that never answer. The
// handshake is what was owed, so it is what the log shows.
func TestAttemptLogTransportFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, class string
		// endpoint returns the endpoint and allow-lists it.
		endpoint func(t *testing.T, st store.Store) string
	}{
		{"a name that does not resolve", "dns", func(t *testing.T, st store.Store) string {
			return allow(t, st, "http://herald-attempts.invalid/", true) + "hook" // RFC 6761: never resolves
		}},
		{"a blocked private address", "blocked-address", func(t *testing.T, st store.Store) string {
			target := newReceiver(t)
			return allow(t, st, target.srv.URL+"/", false) + "hook"
		}},
		{"a TLS failure", "tls", func(t *testing.T, st store.Store) string {
			untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			t.Cleanup(untrusted.Close)
			return allow(t, st, untrusted.URL+"/", true) + "hook"
		}},
		{"a closed port", "connection-refused", func(t *testing.T, st store.Store) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := l.Addr().String()
			require.NoError(t, l.Close())
			return allow(t, st, "http://"+addr+"/", true) + "hook"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, st store.Store) {
				e := newEnv(t, st, withInstance)
				id := e.subscribe(withEndpoint(c.endpoint(t, st)))
				a := waitAttempt(t, st, id, c.class, failedWith(c.class))
				require.Equal(t, "handshake", a.Kind)
				require.Zero(t, a.FirstEvent)
				require.Equal(t, instance, a.Instance)
				requireNoHTTP(t, a)
			})
		})
	}
}

// allow allow-lists prefix and returns it.
func allow(t *testing.T, st store.Store, prefix string, private bool) string {
	t.Helper()
	require.NoError(t, st.AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "target", URLPrefix: prefix, AllowPrivateNetwork: private, CreatedAt: time.Now()}))
	return prefix
}

// TestAttemptLogRevoked: the owner lost the Subscription (suspended) while
// event 1 waited: the log shows the refused send, with the events that
// waited and no HTTP fields.
func TestAttemptLogRevoked(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		_, err := st.PutClient(context.Background(), store.Client{ClientID: client.ClientID, Status: "suspended", MaxPayload: "full-resource", UpdatedAt: time.Now()})
		require.NoError(t, err)
		e.encounter("a")
		e.waitStatus(id, "off")
		a := waitAttempt(t, st, id, "revoked", failedWith("revoked"))
		require.Equal(t, "event-notification", a.Kind)
		require.Equal(t, [2]int64{1, 1}, [2]int64{a.FirstEvent, a.LastEvent})
		requireNoHTTP(t, a)
		require.Zero(t, a.Latency)
	})
}

// TestAttemptLogOff: HERALD_ATTEMPT_LOG=false logs nothing.
func TestAttemptLogOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory(), func(c *delivery.Config) { c.NoAttemptLog = true })
	id := e.subscribe()
	e.waitStatus(id, "active")
	as, err := e.st.Attempts(context.Background(), store.AttemptQuery{SubscriptionID: id})
	require.NoError(t, err)
	require.Empty(t, as)
}
