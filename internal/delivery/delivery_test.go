package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
)

// TestHandshakeActivates: a new Subscription gets a signed handshake; the
// 2xx makes it active, recorded as a new version of the resource.
func TestHandshakeActivates(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		got := e.recv.waitFor(t, "the handshake", func(got []delivered) bool { return len(got) >= 1 })
		hs := got[0]
		require.Equal(t, "handshake", hs.Bundle.Kind)
		require.Equal(t, "requested", hs.Bundle.State, "the handshake reports the status it is sent in")
		require.Equal(t, "history", hs.Bundle.Type)
		fhirtest.RequireValidR4(t, hs.Body)
		require.Equal(t, "application/fhir+json", hs.Header.Get("Content-Type"))
		require.Equal(t, "Herald/test", hs.Header.Get("User-Agent"))
		require.Equal(t, "t1", hs.Header.Get("X-Tenant"), "channel.header is sent")

		e.waitStatus(id, "active")
		res := e.resource(id)
		require.Equal(t, "active", res["status"])
		require.Equal(t, "2", res["meta"].(map[string]any)["versionId"], "the status change is a new version")
		require.NotContains(t, res, "error")
	})
}

// TestSignatures: both signature schemes verify with code we did not write
// (the Standard Webhooks reference library) or recompute from the spec.
func TestSignatures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory())
	e.subscribe()
	hs := e.recv.waitFor(t, "the handshake", func(got []delivered) bool { return len(got) >= 1 })[0]

	wh, err := standardwebhooks.NewWebhookRaw([]byte(secret))
	require.NoError(t, err)
	require.NoError(t, wh.Verify(hs.Body, hs.Header), "webhook-signature verifies with the reference library")
	require.Error(t, wh.Verify(append([]byte(" "), hs.Body...), hs.Header), "a changed body does not verify")

	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(hs.Body)
	require.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), hs.Header.Get("X-Hub-Signature"))
	require.True(t, strings.HasPrefix(hs.Header.Get("webhook-id"), "msg_"))
}

// TestEventsInOrder: events go out in order, each exactly once when every
// send is acknowledged, and the cursor follows.
func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		for i := range 12 {
			e.encounter("enc-" + strconv.Itoa(i))
		}
		got := e.recv.waitFor(t, "12 events", func(got []delivered) bool { return len(ackedEvents(got)) >= 12 })
		require.Equal(t, span(1, 12), ackedEvents(got), "in order, no duplicates, no gaps")
		for _, d := range got[1:] {
			fhirtest.RequireValidR4(t, d.Body)
		}
		waitAcknowledged(t, st, id, 12)
	})
}

// TestRetryThenSuccess: a subscriber answering 5xx gets the same events
// again, with the same webhook-id, after a backoff; nothing acknowledged is
// sent twice.
func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		e.encounter("a")
		e.recv.waitFor(t, "event 1", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
		failing := int32(3)
		e.recv.setAnswer(func(n int, d delivered) int {
			if d.Bundle.Kind == "event-notification" && atomic.AddInt32(&failing, -1) >= 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		e.encounter("b")
		e.encounter("c")
		got := e.recv.waitFor(t, "events 2 and 3", func(got []delivered) bool { return len(ackedEvents(got)) >= 3 })
		require.Equal(t, span(1, 3), ackedEvents(got))
		var failed []delivered
		for _, d := range got {
			if d.Status == http.StatusServiceUnavailable {
				failed = append(failed, d)
			}
		}
		require.Len(t, failed, 3)
		// A retry of the same events keeps the webhook-id; a batch that grew
		// meanwhile is a different message (a receiver deduplicating by id
		// must not drop the added event).
		pairs := 0
		for i := range failed {
			for j := i + 1; j < len(failed); j++ {
				same := slices.Equal(failed[i].Bundle.Event, failed[j].Bundle.Event)
				require.Equal(t, same, failed[i].Header.Get("webhook-id") == failed[j].Header.Get("webhook-id"),
					"%v and %v", failed[i].Bundle.Event, failed[j].Bundle.Event)
				if same {
					pairs++
				}
			}
		}
		require.NotZero(t, pairs, "some retry repeated the same events")
		require.Equal(t, "active", e.state(id).Status, "three failures do not make it error")
	})
}

// TestTimeout: a subscriber that does not answer within the channel timeout
// counts as a failure, and the events go again.
func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory())
	id := e.subscribe(withChannelExtension("timeout", 1))
	e.waitStatus(id, "active")
	var hung atomic.Bool
	e.recv.setAnswer(func(n int, d delivered) int {
		if d.Bundle.Kind == "event-notification" && hung.CompareAndSwap(false, true) {
			return 0 // hang
		}
		return http.StatusOK
	})
	start := time.Now()
	e.encounter("a")
	got := e.recv.waitFor(t, "the retry after the timeout", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
	require.GreaterOrEqual(t, time.Since(start), time.Second, "the retry came after the 1 s timeout")
	require.Equal(t, []string{"handshake", "event-notification", "event-notification"}, kinds(got))
}

// TestErrorThenActive: ten consecutive failures make the Subscription error
// (with Subscription.error set); a later success makes it active again and
// drains the backlog in order.
func TestErrorThenActive(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		var down atomic.Bool
		down.Store(true)
		e.recv.setAnswer(func(n int, d delivered) int {
			if down.Load() {
				return http.StatusBadGateway
			}
			return http.StatusOK
		})
		e.encounter("a")
		e.encounter("b")
		errored := e.waitStatus(id, "error")
		require.Contains(t, errored.Error, "10 consecutive delivery attempts failed")
		require.Contains(t, errored.Error, "status 502")
		res := e.resource(id)
		require.Equal(t, "error", res["status"])
		require.Equal(t, errored.Error, res["error"], "Subscription.error tells why")

		down.Store(false)
		e.waitStatus(id, "active")
		got := e.recv.waitFor(t, "the backlog", func(got []delivered) bool { return len(ackedEvents(got)) >= 2 })
		require.Equal(t, span(1, 2), ackedEvents(got))
		require.NotContains(t, e.resource(id), "error", "the error is cleared")
	})
}

// TestHeartbeat: an active Subscription with a heartbeat period gets
// heartbeats while nothing else is sent.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		// The API allows 10 s at least; the engine is what is under test.
		setState(t, st, id, func(s *store.SubscriptionState) { s.HeartbeatPeriod = 300 * time.Millisecond })
		e.encounter("a") // makes it due; afterwards silence
		got := e.recv.waitFor(t, "two heartbeats", func(got []delivered) bool {
			n := 0
			for _, d := range got {
				if d.Bundle.Kind == "heartbeat" {
					n++
				}
			}
			return n >= 2
		})
		for _, d := range got {
			if d.Bundle.Kind == "heartbeat" {
				fhirtest.RequireValidR4(t, d.Body)
				require.Equal(t, int64(1), d.Bundle.Total, "events-since-subscription-start")
				require.Empty(t, d.Bundle.Event)
			}
		}
	})
}

// TestMaxCount: a backlog goes out in notifications of at most maxCount
// events.
func TestMaxCount(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.recv.setAnswer(func(n int, d delivered) int {
			if d.Bundle.Kind == "handshake" {
				return http.StatusInternalServerError // hold the events back until all five exist
			}
			return http.StatusOK
		})
		id := e.subscribe(withChannelExtension("max-count", 2))
		e.recv.waitFor(t, "a failed handshake", func(got []delivered) bool { return len(got) >= 1 })
		for i := range 5 {
			e.encounter("enc-" + strconv.Itoa(i))
		}
		e.recv.setAnswer(nil)
		e.waitStatus(id, "active")
		got := e.recv.waitFor(t, "five events", func(got []delivered) bool { return len(ackedEvents(got)) >= 5 })
		var batches [][]int64
		for _, d := range got {
			if d.Bundle.Kind == "event-notification" {
				batches = append(batches, d.Bundle.Event)
			}
		}
		require.Equal(t, [][]int64{{1, 2}, {3, 4}, {5}}, batches)
	})
}

// TestFullResource: full-resource notifications carry the focus version
// that fired.
func TestFullResource(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe(withContent("full-resource"))
		e.waitStatus(id, "active")
		e.encounter("full-1")
		got := e.recv.waitFor(t, "the event", func(got []delivered) bool { return len(ackedEvents(got)) >= 1 })
		body := got[len(got)-1].Body
		fhirtest.RequireValidR4(t, body)
		require.Contains(t, string(body), `"id":"full-1"`)
		require.Contains(t, string(body), `"Patient/p1"`)
	})
}

// TestRevokedBeforeSend: the check before a send finds the owner suspended,
// the endpoint gone from the allow-list or the payload ceiling lowered:
// nothing is sent and the Subscription is off, with the reason.
func TestRevokedBeforeSend(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, content, reason string
		revoke                func(t *testing.T, st store.Store)
	}{
		{"client suspended", "id-only", "suspended", func(t *testing.T, st store.Store) {
			_, err := st.PutClient(context.Background(), store.Client{ClientID: client.ClientID, Status: "suspended", MaxPayload: "full-resource", UpdatedAt: time.Now()})
			require.NoError(t, err)
		}},
		{"endpoint removed from the allow-list", "id-only", "allow-list", func(t *testing.T, st store.Store) {
			require.NoError(t, st.RemoveEndpoint(context.Background(), "recv"))
		}},
		{"payload ceiling lowered", "full-resource", "ceiling", func(t *testing.T, st store.Store) {
			_, err := st.PutClient(context.Background(), store.Client{ClientID: client.ClientID, Status: "active", MaxPayload: "id-only", UpdatedAt: time.Now()})
			require.NoError(t, err)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, st store.Store) {
				e := newEnv(t, st)
				id := e.subscribe(withContent(c.content))
				e.waitStatus(id, "active")
				c.revoke(t, st)
				before := len(e.recv.all())
				e.encounter("a")
				off := e.waitStatus(id, "off")
				require.Contains(t, off.Error, c.reason)
				require.Len(t, e.recv.all(), before, "nothing was sent after the revocation")
				require.Equal(t, "off", e.resource(id)["status"])
			})
		})
	}
}

// TestEndPassed: a Subscription whose end passes is switched off.
func TestEndPassed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory())
	id := e.subscribe()
	e.waitStatus(id, "active")
	setState(t, e.st, id, func(s *store.SubscriptionState) { s.End = time.Now().Add(200 * time.Millisecond) })
	e.encounter("a") // due now, and the end is the next thing due
	off := e.waitStatus(id, "off")
	require.Contains(t, off.Error, "end")
}

// TestPrivateAddressRefused: an allow-listed endpoint on loopback without
// allow_private_network, or a name resolving to loopback, receives nothing;
// the attempts fail and the Subscription ends in error.
func TestPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	for name, host := range map[string]string{"ip": "127.0.0.1", "dns name": "localhost"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := storeMemory()
			e := newEnv(t, st)
			target := newReceiver(t)
			port := target.srv.URL[strings.LastIndex(target.srv.URL, ":")+1:]
			endpoint := "http://" + host + ":" + port + "/hook"
			require.NoError(t, st.AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "strict", URLPrefix: "http://" + host + ":" + port + "/", CreatedAt: time.Now()}))
			id := e.subscribe(withEndpoint(endpoint))
			errored := e.waitStatus(id, "error")
			require.Contains(t, errored.Error, "blocked address")
			require.Empty(t, target.all(), "the private address was never contacted")
		})
	}
}

// TestRedirectNotFollowed: a subscriber redirecting to a private address
// gets no second request there; the redirect is a failure.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory())
	inner := newReceiver(t)
	e.recv.setAnswer(func(n int, d delivered) int { return http.StatusFound })
	redirecting := httptest.NewServer(http.RedirectHandler(inner.srv.URL+"/metadata", http.StatusFound))
	t.Cleanup(redirecting.Close)
	require.NoError(t, e.st.AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "redir", URLPrefix: redirecting.URL + "/", AllowPrivateNetwork: true, CreatedAt: time.Now()}))
	id := e.subscribe(withEndpoint(redirecting.URL + "/hook"))
	errored := e.waitStatus(id, "error")
	require.Contains(t, errored.Error, "redirect not followed")
	require.Empty(t, inner.all())
}

// TestClientUpdateRestartsHandshake: a client's update makes the
// Subscription requested again; a new handshake follows, then events.
func TestClientUpdateRestartsHandshake(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		id := e.subscribe()
		e.waitStatus(id, "active")
		_, err := e.svc.Update(context.Background(), client, "Subscription", id, []byte(subscriptionJSONWithID(e, id)), "")
		require.NoError(t, err)
		e.encounter("a")
		got := e.recv.waitFor(t, "a second handshake and the event", func(got []delivered) bool { return len(ackedEvents(got)) >= 1 })
		require.Equal(t, []string{"handshake", "handshake", "event-notification"}, kinds(got))
	})
}

// TestTwoEnginesShareTheWork: two engines on one PostgreSQL schema (as two
// instances would) send every event once, in order.
func TestTwoEnginesShareTheWork(t *testing.T) {
	t.Parallel()
	st := pgStore(t)
	e := newEnv(t, st)
	e.start() // a second engine on the same store
	var ids []string
	for range 4 {
		ids = append(ids, e.subscribe())
	}
	for _, id := range ids {
		e.waitStatus(id, "active")
	}
	for i := range 25 {
		e.encounter("enc-" + strconv.Itoa(i))
	}
	got := e.recv.waitFor(t, "25 events for each of 4", func(got []delivered) bool { return len(ackedEvents(got)) >= 100 })
	per := map[string][]int64{}
	for _, d := range got {
		if d.Bundle.Kind == "event-notification" {
			sub := subscriptionOf(d)
			per[sub] = append(per[sub], d.Bundle.Event...)
		}
	}
	require.Len(t, per, 4)
	for sub, evs := range per {
		require.Equal(t, span(1, 25), evs, "%s: each event once, in order", sub)
	}
}

// TestShutdownReleasesLeases: stopping the engine mid-send (past the drain
// time) releases the lease, so another engine sends at once.
func TestShutdownReleasesLeases(t *testing.T) {
	t.Parallel()
	st := pgStore(t)
	e := newEnv(t, st, func(c *delivery.Config) { c.Drain = 100 * time.Millisecond; c.Lease = time.Minute })
	var hang atomic.Bool
	hang.Store(true)
	e.recv.setAnswer(func(n int, d delivered) int {
		if hang.Load() {
			return 0
		}
		return http.StatusOK
	})
	id := e.subscribe(withChannelExtension("timeout", 30))
	e.recv.waitFor(t, "the handshake in flight", func(got []delivered) bool { return len(got) >= 1 })
	e.halt()
	hang.Store(false)
	e.start(func(c *delivery.Config) { c.Lease = time.Minute })
	e.waitStatus(id, "active") // well before the one-minute lease would expire
}

func subscriptionOf(d delivered) string {
	s := string(d.Body)
	i := strings.Index(s, "/Subscription/")
	j := strings.IndexByte(s[i:], '"')
	return s[i : i+j]
}

func subscriptionJSONWithID(e *env, id string, mods ...func(map[string]any)) string {
	body := subscriptionJSON(e.recv.srv.URL+"/hook", mods...)
	return `{"id":"` + id + `",` + body[1:]
}

func setState(t *testing.T, st store.Store, id string, fn func(*store.SubscriptionState)) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		s, err := tx.Subscription(ctx, id)
		if err != nil {
			return err
		}
		fn(&s)
		return tx.PutSubscription(ctx, s)
	}))
}

func waitAcknowledged(t *testing.T, st store.Store, id string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := st.Acknowledged(context.Background(), id)
		require.NoError(t, err)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor at %d, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestUpdateDuringSendWaitsForIt: a client's update while a send is in
// flight cancels that send's lease, but the new handshake waits until the
// send's time is up: one Subscription never has two sends in flight.
func TestUpdateDuringSendWaitsForIt(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		var hung atomic.Bool
		e.recv.setAnswer(func(n int, d delivered) int {
			if d.Bundle.Kind == "event-notification" && hung.CompareAndSwap(false, true) {
				return 0 // hang past the 1 s timeout
			}
			return http.StatusOK
		})
		id := e.subscribe(withChannelExtension("timeout", 1))
		e.waitStatus(id, "active")
		e.encounter("a")
		inFlight := e.recv.waitFor(t, "the event in flight", func(got []delivered) bool { return hung.Load() && len(got) >= 2 })[1]
		_, err := e.svc.Update(context.Background(), client, "Subscription", id,
			[]byte(subscriptionJSONWithID(e, id, withChannelExtension("timeout", 1))), "")
		require.NoError(t, err)
		got := e.recv.waitFor(t, "the new handshake", func(got []delivered) bool { return len(got) >= 3 })
		require.Equal(t, "handshake", got[2].Bundle.Kind)
		require.GreaterOrEqual(t, got[2].At.Sub(inFlight.At), time.Second,
			"the new handshake came while the first send could still be in flight")
		got = e.recv.waitFor(t, "the event again", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
		require.Equal(t, []int64{1}, ackedEvents(got))
	})
}

// refuseFirstEvent makes the receiver answer the first event notification
// with status and Retry-After retryAfter, and every later request with 200.
func refuseFirstEvent(e *env, status int, retryAfter string) {
	e.recv.mu.Lock()
	e.recv.retryAfter = retryAfter
	e.recv.mu.Unlock()
	refused := int32(1)
	e.recv.setAnswer(func(n int, d delivered) int {
		if d.Bundle.Kind == "event-notification" && atomic.AddInt32(&refused, -1) >= 0 {
			return status
		}
		return http.StatusOK
	})
}

// TestRetryAfterHonoured (issue 17, finding 4): a subscriber answering 429
// with Retry-After was retried after the ordinary backoff (1 s, here 10 ms)
// however long it asked for. The retry now waits for it, up to the cap.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *delivery.Config) { c.RetryCap = time.Minute })
		id := e.subscribe()
		e.waitStatus(id, "active")
		refuseFirstEvent(e, http.StatusTooManyRequests, "2")
		e.encounter("a")
		got := e.recv.waitFor(t, "the retried event", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
		var first, retry time.Time
		for _, d := range got {
			if d.Bundle.Kind != "event-notification" {
				continue
			}
			if d.Status == http.StatusTooManyRequests {
				first = d.At
			} else if retry.IsZero() {
				retry = d.At
			}
		}
		require.False(t, first.IsZero())
		require.GreaterOrEqual(t, retry.Sub(first), 2*time.Second, "the retry came before the subscriber's Retry-After")
	})
}

// TestRetryAfterCapped: a Retry-After longer than the retry cap waits only
// the cap.
func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, memory.New(), func(c *delivery.Config) { c.RetryCap = 300 * time.Millisecond })
	id := e.subscribe()
	e.waitStatus(id, "active")
	refuseFirstEvent(e, http.StatusServiceUnavailable, "3600")
	e.encounter("a")
	e.recv.waitFor(t, "the retry within the cap, not an hour later", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
}
