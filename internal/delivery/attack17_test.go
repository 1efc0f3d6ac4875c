package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/heaptest"
	"github.com/herald-fhir/herald/internal/store"
)

// bigEncounter writes Encounter/<id> in progress for patient p1 with about
// size bytes of incompressible text in extensions (R4 strings are at most
// 1 MiB each).
func (e *env) bigEncounter(id string, size int) {
	e.t.Helper()
	exts := ""
	for size > 0 {
		n := min(size, 512<<10)
		size -= n
		if exts != "" {
			exts += ","
		}
		exts += fmt.Sprintf(`{"url":"https://attack.example/pad","valueString":%q}`, incompressible(n))
	}
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"extension":[%s],"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`, id, exts)
	_, err := e.svc.Update(context.Background(), publisher, "Encounter", id, []byte(body), "")
	require.NoError(e.t, err)
}

func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestNotificationHeldWithinCacheBytes: while one id-only notification
// of a backlog of large resources is in flight, delivery holds about
// HERALD_DELIVERY_CACHE_BYTES of resources, not the whole backlog. Before,
// the claim's focus bodies stayed with the task through the send: a
// backlog of 40 x 1 MiB Encounters held +42 MiB for one 16 KiB
// notification (a hanging receiver holds it for up to 60 s).
func TestNotificationHeldWithinCacheBytes(t *testing.T) {
	const events, size, cache = 40, 1 << 20, 4 << 20
	e := newEnv(t, pgStore(t), func(c *delivery.Config) { c.CacheBytes = cache })
	e.recv.setAnswer(func(_ int, d delivered) int {
		if d.Bundle.Kind == "event-notification" {
			return 0 // hang until the test ends
		}
		return 200
	})
	id := e.subscribe(withContent("id-only"))
	e.waitStatus(id, "active")
	e.halt()
	for i := range events {
		e.bigEncounter(fmt.Sprintf("big%d", i), size)
	}
	base := heapNow()
	e.start(func(c *delivery.Config) { c.CacheBytes = cache })
	got := e.recv.waitFor(t, "the event notification", hasKind("event-notification"))
	held := heapNow() - base
	t.Logf("%d events of %d KiB: notification of %d events, heap +%d MiB while it is in flight (cache bound %d MiB)",
		events, size>>10, len(last(got, "event-notification").Bundle.Event), held>>20, cache>>20)
	require.Less(t, held, int64(2*cache), "delivery holds the backlog's resources outside HERALD_DELIVERY_CACHE_BYTES")
}

// TestNotificationBoundedByBytes: a full-resource notification carries at
// most the byte budget of resources (never less than its first event),
// like $events; the rest follow in order. Before, maxCount alone bounded
// it: 40 events of 1 MiB made one 40 MiB notification and +120 MiB of
// heap while it was in flight (100 x 4 MiB: 400 MiB per notification,
// per worker; with websockets, per bound Subscription).
func TestNotificationBoundedByBytes(t *testing.T) {
	const events, size, budget = 12, 1 << 20, 3 << 20
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *delivery.Config) { c.MaxBytes = budget })
		id := e.subscribe(withContent("full-resource"))
		e.waitStatus(id, "active")
		e.halt()
		for i := range events {
			e.bigEncounter(fmt.Sprintf("big%d", i), size)
		}
		e.start(func(c *delivery.Config) { c.MaxBytes = budget })
		got := e.recv.waitFor(t, "every event", func(got []delivered) bool { return len(ackedEvents(got)) >= events })
		require.Equal(t, span(1, events), ackedEvents(got))
		for _, d := range got {
			if d.Bundle.Kind == "event-notification" {
				t.Logf("notification of events %v: %d KiB", d.Bundle.Event, len(d.Body)>>10)
				require.LessOrEqual(t, len(d.Body), budget+size+size/2, "a notification carries more than the byte budget and one event")
			}
		}
	})
}

func hasKind(kind string) func([]delivered) bool {
	return func(got []delivered) bool { return last(got, kind) != nil }
}

func last(got []delivered, kind string) *delivered {
	for i := len(got) - 1; i >= 0; i-- {
		if got[i].Bundle.Kind == kind {
			return &got[i]
		}
	}
	return nil
}

// TestSharedHostTurnsPerOwner: the turns at an endpoint (scheme, host,
// port: HERALD_DELIVERY_MAX_PER_ENDPOINT of them) are kept per owner, so
// one owner's hanging Subscriptions at a shared host (an integration hub,
// a webhook relay: each tenant its own path) cannot take another owner's
// turns there. Before, client "app" holding the host's four slots with
// hanging sends (refilled as each times out) kept "app-b"'s handshake to
// the same host "endpoint busy" for as long as it liked: never sent,
// never failed, never active.
func TestSharedHostTurnsPerOwner(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		shared := newReceiver(t)
		shared.setAnswer(func(_ int, d delivered) int {
			if d.Path == "/b" {
				return http.StatusOK
			}
			return 0 // "app"'s endpoints hang
		})
		require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "shared", URLPrefix: shared.srv.URL + "/",
			AllowPrivateNetwork: true, CreatedAt: time.Now()}))
		for i := range 8 { // twice webhook's default MaxPerEndpoint
			_, err := e.svc.Create(ctx, client, "Subscription",
				[]byte(subscriptionJSON(shared.srv.URL+fmt.Sprintf("/hook/%d", i), withChannelExtension("timeout", 30))))
			require.NoError(t, err)
		}
		shared.waitWithin(t, 10*time.Second, "app's four hanging handshakes", func(got []delivered) bool { return len(got) >= 4 })

		id := e.subscribeOtherAt(t, shared.srv.URL+"/b", "p2")
		shared.waitWithin(t, 10*time.Second, "app-b's handshake at the shared host", func(got []delivered) bool {
			for _, d := range got {
				if d.Path == "/b" {
					return true
				}
			}
			return false
		})
		e.waitStatus(id, "active")
	})
}

// TestFanOutDecodesWithinABudget: before a send, every event's focus is
// decoded to check it against the Subscription's filters and its owner's
// compartment, once per Subscription; a JSON body costs many times its
// size decoded (a 2 MiB Encounter of small extensions: about +64 MiB). A
// write that fires for many Subscriptions had every worker decode it at
// once: 8 Subscriptions peaked at +335 MiB here (32 workers and a 4 MiB
// body: about 4 GB). Decoding now shares Config.DecodeBytes (here one
// body: +80..90 MiB). PostgreSQL: its claim brings the focus bodies the
// weight is taken from (the embedded store's are read later, already in
// memory).
func TestFanOutDecodesWithinABudget(t *testing.T) {
	const subs, size = 8, 2 << 20
	opt := func(c *delivery.Config) { c.DecodeBytes = size }
	e := newEnv(t, pgStore(t), opt)
	for range subs {
		e.subscribe()
	}
	e.recv.waitFor(t, "the handshakes", func(got []delivered) bool { return len(got) >= subs })
	ext := `{"url":"https://attack.example/x","valueBoolean":true}`
	k := (size - 300) / (len(ext) + 1)
	body := `{"resourceType":"Encounter","id":"wide","extension":[` + strings.Repeat(ext+",", k-1) + ext +
		`],"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`
	_, err := e.svc.Update(context.Background(), publisher, "Encounter", "wide", []byte(body), "")
	require.NoError(t, err)

	grown := heaptest.PeakGrowth(func() {
		e.recv.waitFor(t, "every Subscription's event", func(got []delivered) bool { return len(ackedEvents(got)) >= subs })
	})
	t.Logf("one %d KiB write fanned out to %d Subscriptions: heap peak +%d MiB", size>>10, subs, grown>>20)
	require.Less(t, grown, int64(300<<20), "every worker decoded the focus at once")
}
