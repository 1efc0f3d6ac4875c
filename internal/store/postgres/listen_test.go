package postgres

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReconnectPauseResetsAfterAHealthyConnection (issue 17, finding 11):
// the LISTEN reconnect pause grew to 5 s and stayed there for good, so
// every later outage, however brief, left delivery polling for 5 s.
func TestReconnectPauseResetsAfterAHealthyConnection(t *testing.T) {
	t.Parallel()
	next := listenPauseMin
	var waits []time.Duration
	for range 8 { // connections failing at once
		var wait time.Duration
		wait, next = reconnectPause(next, 0)
		waits = append(waits, wait)
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, listenPauseMax, listenPauseMax}, waits)

	wait, next := reconnectPause(next, time.Hour) // a connection that stayed up
	require.Equal(t, listenPauseMin, wait)
	require.Equal(t, 2*listenPauseMin, next)
	wait, _ = reconnectPause(listenPauseMax, listenHealthy-time.Second)
	require.Equal(t, listenPauseMax, wait, "a connection that dropped soon after is the same outage")
}
