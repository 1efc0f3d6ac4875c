package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestFinishInFlightAtCloseIsRecordedOnce: Close while the finisher's
// statement is in flight. Cancelling that statement's context does not
// cancel it on the server (pgx's default context handler only abandons the
// connection), so it still commits; the caller must then not be told to
// record its outcome again (alone), which applied it a second time (a second
// attempt logged, failure_count counted twice) or reported an error or
// ErrLeaseLost for an outcome that was recorded.
func TestFinishInFlightAtCloseIsRecordedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(4))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, s.SeparateDeliveryPool(ctx, 2))
	now := time.Now().Truncate(time.Millisecond)
	tasks := dueSubscriptions(t, s, 1, now)

	// Hold s0's lease row: the outcome's statement (its lease trigger)
	// waits for it, so the statement is in flight when Close comes.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	holder, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `SELECT FROM subscription_leases WHERE id = 's0' FOR UPDATE`)
	require.NoError(t, err)

	r := sent(tasks[0], now)
	r.KeepFor = time.Minute // the lease stays: a second application would apply
	finished := make(chan error, 1)
	go func() { finished <- s.FinishDelivery(context.WithoutCancel(ctx), r) }()
	// Only sessions the holder blocks: other tests' statements, in other
	// schemas, may be waiting on locks of their own meanwhile.
	require.Eventually(t, func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) AND query LIKE 'WITH input AS%'`).Scan(&n)
		return err == nil && n == 1
	}, 10*time.Second, 5*time.Millisecond, "the outcome's statement waits for the lease row")

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	require.Eventually(t, s.FinisherStoppingForTest, 10*time.Second, time.Millisecond, "Close told the finisher to stop")
	require.NoError(t, holder.Commit(ctx))

	select {
	case err = <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("FinishDelivery did not return")
	}
	<-closed
	var attempts int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE subscription_id = 's0'`).Scan(&attempts))
	t.Logf("FinishDelivery: %v; attempts logged: %d", err, attempts)
	require.NoError(t, err, "the outcome was recorded")
	require.Equal(t, 1, attempts, "the outcome recorded once")
}
