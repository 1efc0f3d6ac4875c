package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// woken reports whether a wake-up was sent by what committed before it
// is called (a sentinel notification, committed after, closes the list).
func woken(t *testing.T, st *postgres.Store, listen, db *pgx.Conn) bool {
	t.Helper()
	st.FlushWakesForTest() // writes wake the other instances once they committed
	return len(notificationsBefore(t, listen, db)) > 0
}

// notificationsBefore returns the herald_delivery notifications committed
// before it is called: notifications arrive in commit order, so a sentinel
// on attack_sentinel (which listen must hear) committed now closes the list.
func notificationsBefore(t *testing.T, listen, db *pgx.Conn) []*pgconn.Notification {
	t.Helper()
	_, err := db.Exec(t.Context(), "NOTIFY attack_sentinel")
	require.NoError(t, err)
	var got []*pgconn.Notification
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		n, err := listen.WaitForNotification(ctx)
		cancel()
		require.NoError(t, err)
		if n.Channel == "attack_sentinel" {
			return got
		}
		got = append(got, n)
	}
}

// TestAttackHandoffMixedWrite (holds): one write with two events for
// Subscription a (a transaction Bundle) and one for idle b: b is handed
// off, a (two events owed) is not, the wake-up is sent for a, and a claim
// brings a's two events in order; a write for b alone (handed off) sends
// no wake-up.
func TestAttackHandoffMixedWrite(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")
	f.put("b", "client", "active")
	listen, db := listenForWakes(t, url)
	woken(t, st, listen, db) // drop the puts' wake-ups

	defer f.handOff()()
	f.write("a", "b", "a")
	tasks := f.eng.take()
	require.Len(t, tasks, 1)
	require.Equal(t, "b", tasks[0].State.ID)
	require.True(t, woken(t, st, listen, db), "a's events were not handed off and woke nobody")
	claimed := f.claim(3)
	require.Len(t, claimed, 1)
	require.Equal(t, "a", claimed[0].State.ID)
	require.Equal(t, []int64{1, 2}, eventNumbers(claimed[0]))

	f.finish(storeResult("b", tasks[0].Lease, 1))
	f.write("b")
	require.Len(t, f.eng.take(), 1)
	require.False(t, woken(t, st, listen, db), "a handed-off write woke the workers")
}

func storeResult(id, lease string, through int64) store.DeliveryResult {
	return store.DeliveryResult{SubscriptionID: id, Lease: lease, Sent: true, DeliveredThrough: through}
}
