package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestAttackHandoffToStoppingEngineWakesNobody: instance A reserves a worker
// for a write, then stops (a rolling restart) before the write commits.
// The write's COMMIT leases the Subscription for A (the hand-off) and so
// sends no wake-up; A's Start finds Run gone and releases the lease, again
// without a wake-up. Instance B, idle and healthy, is never told: the
// event waits for B's poll (Poll: an hour here, a second by default),
// where before the hand-off the append's NOTIFY made B claim it at once.
func TestAttackHandoffToStoppingEngineWakesNobody(t *testing.T) {
	t.Parallel()
	direct := pgtest.DatabaseURL(t)
	open := func() *postgres.Store {
		s := pgtest.Open(t, direct, postgres.WithMaxConns(6))
		return s
	}
	stA, stB := open(), open()
	a := newEnv(t, stA, func(c *delivery.Config) { c.Poll = time.Hour })
	id := a.subscribe()
	a.waitStatus(id, "active")

	// Instance B: idle, polling once an hour, woken by commits.
	cfgB := a.engineConfig(func(c *delivery.Config) { c.Poll = time.Hour })
	cfgB.Store = stB
	engB := delivery.New(cfgB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); engB.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Hold the Subscription's row so that the write, having reserved A's
	// worker (before its COMMIT round trip), waits in that round trip.
	db, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer db.Close(context.Background())
	lockTx, err := db.Begin(t.Context())
	require.NoError(t, err)
	_, err = lockTx.Exec(t.Context(), `SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE`, id)
	require.NoError(t, err)

	wrote := make(chan error, 1)
	go func() {
		body := `{"resourceType":"Encounter","id":"enc-1","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`
		_, err := a.svc.Update(context.Background(), publisher, "Encounter", "enc-1", []byte(body), "")
		wrote <- err
	}()
	mon, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer mon.Close(context.Background())
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, mon.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0`).Scan(&n))
		return n > 0
	}, 10*time.Second, 5*time.Millisecond, "the write never reached its COMMIT round trip")
	a.halt() // A stops: its reservation is still held by the write
	require.NoError(t, lockTx.Rollback(t.Context()))
	require.NoError(t, <-wrote)

	var leaseToken *string
	require.NoError(t, mon.QueryRow(t.Context(), `SELECT lease_token FROM subscriptions WHERE id = $1`, id).Scan(&leaseToken))
	t.Logf("after the write: lease token %v (nil: released by the stopped engine)", leaseToken)
	a.recv.waitFor(t, "instance B sending the event", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
}
