package wschannel

import (
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// TestSlowReaderOverflowCloses: a socket whose queue is full is closed
// (1013) instead of making its deliveries wait, which would hold up every
// other Subscription bound to it; nothing is lost ($events has the events).
func TestSlowReaderOverflowCloses(t *testing.T) {
	t.Parallel()
	sk := newSocket(New(Config{Limits: Limits{QueueLength: 2}}), nil)
	require.NoError(t, sk.enqueue([]byte("1")))
	require.NoError(t, sk.enqueue([]byte("2")))
	done := make(chan error, 1)
	go func() { done <- sk.enqueue([]byte("3")) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, errClosed, "overflow never blocks the deliverer")
	case <-time.After(10 * time.Second):
		t.Fatal("enqueue blocked on a full queue")
	}
	<-sk.stopped
	require.Equal(t, websocket.StatusTryAgainLater, sk.stopCode)
	require.Contains(t, sk.stopReason, "$events")
}

// TestCloseReasonFitsAFrame: close reasons are cut to the 123 bytes a close
// frame holds, never inside a UTF-8 sequence.
func TestCloseReasonFitsAFrame(t *testing.T) {
	t.Parallel()
	long := ""
	for len(long) < 300 {
		long += "révoqué "
	}
	r := clipReason(long)
	require.LessOrEqual(t, len(r), 123)
	require.True(t, len(r) > 100)
	require.Regexp(t, `^[\p{L} ]+\.\.\.$`, r, "valid UTF-8 throughout")
	require.Equal(t, "short", clipReason("short"))
}

// TestSlowReaderOverflowClosesByBytes: the queue is bounded by bytes too
// (a reader behind on large notifications held QueueLength of them, 256 x
// the notification byte budget), but one notification larger than the
// bound alone still waits in an empty queue.
func TestSlowReaderOverflowClosesByBytes(t *testing.T) {
	t.Parallel()
	sk := newSocket(New(Config{Limits: Limits{QueueLength: 100, QueueBytes: 10}}), nil)
	require.NoError(t, sk.enqueue(make([]byte, 12)), "alone in the queue")
	require.ErrorIs(t, sk.enqueue([]byte("1")), errClosed, "beyond QueueBytes")
	<-sk.stopped
	require.Equal(t, websocket.StatusTryAgainLater, sk.stopCode)
}
