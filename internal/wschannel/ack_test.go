package wschannel_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// TestWebsocketAcknowledgeDoesNotStallDelivery: recording what a socket
// delivered (acknowledge, with the hold renewals) is a commit per bound
// Subscription, and each waits for the Subscription's row lock, which every
// write firing for it holds until it commits. Measured with one socket bound
// to 100 Subscriptions at 200 writes/s, the renewal's acknowledgements kept
// the socket's loop busy for 0.4–0.9 s a time, and no notification of any
// binding went out meanwhile (write-to-message p99 0.15–1 s). Here one
// bound Subscription's row stays locked (as by a long write) while the
// socket has an acknowledgement to record for it: a write for another bound
// Subscription must still be notified.
func TestWebsocketAcknowledgeDoesNotStallDelivery(t *testing.T) {
	url := pgtestURL(t)
	in := newInstance(t, openPG(t, url), wschannel.Limits{})
	locked := in.subscribeFor("app", "id-only", 0, "p1")
	in.subscribeFor("app", "id-only", 0, "p2")
	p := in.bindingToken("app", "")
	require.Len(t, p["subscription"], 2)
	c := dial(t, p["websocket-url"][0])
	c.send("bind-with-token " + p["token"][0])
	c.nextOf(notify.Handshake)
	c.nextOf(notify.Handshake)

	// An event of the first Subscription is delivered: the socket now has
	// an acknowledgement to record for it.
	in.encounter("e1") // patient p1
	require.Equal(t, []int64{1}, c.nextOf(notify.EventNotification).Numbers())

	// Another session locks that Subscription's row, as a write firing for
	// it does until it commits, and keeps it.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	lockTx, err := conn.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lockTx.Rollback(context.Background()) })
	_, err = lockTx.Exec(ctx, `SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE`, locked)
	require.NoError(t, err)
	var lockPID int
	require.NoError(t, lockTx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&lockPID))

	// Wait until the socket's acknowledgement (at its next hold renewal)
	// is waiting for the lock.
	watch, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = watch.Close(context.Background()) })
	require.Eventually(t, func() bool {
		var n int
		err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%delivered_through%'`, lockPID).Scan(&n)
		return err == nil && n > 0
	}, 20*time.Second, 20*time.Millisecond, "the socket acknowledges the locked Subscription's event")

	// A write for the other bound Subscription is still delivered.
	in.do("PUT", "/fhir/Encounter/e2", publisherToken(t), encounterJSON("e2", "p2"))
	m, err := c.read(10 * time.Second)
	require.NoError(t, err, "a notification of another binding while an acknowledgement waits")
	require.Equal(t, notify.EventNotification, m.Type)
	require.Equal(t, []int64{1}, m.Numbers())
}
