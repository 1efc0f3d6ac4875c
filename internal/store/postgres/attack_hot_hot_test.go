package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// TestAttackHotUpdatesAreHot: the goal of migration 00022, measured: of the
// updates of subscriptions that 100 rounds of an event, a claim and its
// outcome make, nearly all are HOT.
func TestAttackHotUpdatesAreHot(t *testing.T) {
	t.Parallel()
	f, db := dueFixture(t)
	f.put("a", "client-1", "active")
	f.put("b", "client-2", "active")
	stats := func() (upd, hot int64) {
		_, err := db.Exec(t.Context(), `SELECT pg_stat_force_next_flush()`)
		require.NoError(t, err)
		_, err = db.Exec(t.Context(), `SELECT pg_stat_clear_snapshot()`)
		require.NoError(t, err)
		require.NoError(t, db.QueryRow(t.Context(), `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'subscriptions'::regclass`).Scan(&upd, &hot))
		return upd, hot
	}
	upd0, hot0 := stats()
	for range 100 {
		f.write("a", "b")
		for _, tk := range f.claim(0) {
			f.finish(store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Sent: true, DeliveredThrough: tk.LastEventNumber})
		}
	}
	var upd, hot int64
	require.Eventually(t, func() bool {
		upd, hot = stats()
		return upd-upd0 >= 600
	}, 10*time.Second, 50*time.Millisecond, "stats of the 600 updates")
	t.Logf("%d updates, %d HOT", upd-upd0, hot-hot0)
	require.GreaterOrEqual(t, float64(hot-hot0), 0.9*float64(upd-upd0))
}
