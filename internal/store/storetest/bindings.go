package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// testQueueSkipsWebsocket: a websocket Subscription (no endpoint) owes no
// handshake and its events make nothing due, but they still wake.
func testQueueSkipsWebsocket(t *testing.T, s store.Store) {
	ws := requested("ws1")
	ws.Endpoint = ""
	wake, other := s.DeliveryWake(), s.DeliveryWake()
	putSubs(t, s, ws)
	requireWoken(t, wake, "putting a websocket Subscription wakes the sockets' instances")
	drainWake(wake)
	drainWake(other)
	appendEvents(t, s, event("ws1", "e1", 1))
	requireWoken(t, wake, "an event of a websocket Subscription wakes")
	requireWoken(t, other, "every listener gets the wake-up: the rest-hook workers and the sockets both follow it")
	ids, _ := claim(t, s, at(500, 0), 10)
	require.Empty(t, ids, "the delivery queue never claims a websocket Subscription")
	n, err := s.EventCount(t.Context(), "ws1")
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "its events are numbered as any other's")

	putSubs(t, s, sub("s2"))
	counts, err := s.EventCounts(t.Context(), []string{"ws1", "s2", "absent"})
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"ws1": 1, "s2": 0}, counts, "EventCounts reads many at once and leaves out ids without a state")
}

func drainWake(wake <-chan struct{}) {
	for {
		select {
		case <-wake:
		default:
			return
		}
	}
}

func requireWoken(t *testing.T, wake <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

func testBindingHolds(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok, err := s.HoldBinding(ctx, "tok1", "socket-a", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "a free token can be held")
	ok, err = s.HoldBinding(ctx, "tok1", "socket-b", time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "one token never binds two live sockets")
	ok, err = s.HoldBinding(ctx, "tok1", "socket-a", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "the holder renews its hold")
	ok, err = s.HoldBinding(ctx, "tok2", "socket-b", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "holds are per token")

	require.NoError(t, s.ReleaseBinding(ctx, "tok1", "socket-b"), "releasing another's hold is no error")
	ok, err = s.HoldBinding(ctx, "tok1", "socket-b", time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "and leaves it held")
	require.NoError(t, s.ReleaseBinding(ctx, "tok1", "socket-a"))
	ok, err = s.HoldBinding(ctx, "tok1", "socket-b", shortLease)
	require.NoError(t, err)
	require.True(t, ok, "a released token binds a new socket (reconnect)")

	pollUntil(func() bool {
		ok, err = s.HoldBinding(ctx, "tok1", "socket-c", time.Minute)
		require.NoError(t, err)
		return ok
	})
	require.True(t, ok, "an expired hold (a crashed instance) can be taken over")
}
