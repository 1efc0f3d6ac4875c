package postgres_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestAttackSlowCommitStallsEveryClaim: a handing-off write holds the
// claim lock from its hand-off statement to the end of its COMMIT. A
// COMMIT that is slow (WAL flush stall, synchronous replication waiting for
// a standby; here a statement standing between the hand-off and COMMIT,
// where that wait would be) stops every capped claim of every instance for
// as long, including claims of events committed long before, for other
// owners. Claims run with synchronous_commit off on the delivery pool
// precisely so that they never wait for the flush; before the hand-off a
// stalled write stalled only itself.
//
// Known and not fixed yet (issue 13's closing note): claims could try the
// lock and retry, or hand-offs take per-owner locks. Set
// HERALD_TEST_KNOWN_LIMITS=1 to run it; it fails today.
func TestAttackSlowCommitStallsEveryClaim(t *testing.T) {
	if os.Getenv("HERALD_TEST_KNOWN_LIMITS") == "" {
		t.Skip("known limitation: a slow handing-off COMMIT stalls capped claims (set HERALD_TEST_KNOWN_LIMITS=1 to run)")
	}
	t.Parallel()
	url := pgtest.URL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("old", "other-client", "active")
	f.write("old") // committed long before, nothing to do with the slow write
	f.put("a", "client", "active")

	const key = 7_412_993
	hold, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer hold.Close(context.Background())
	_, err = hold.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, key)
	require.NoError(t, err)
	held := true
	defer func() {
		if held {
			_, _ = hold.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		}
	}()
	st.ProbeHandoffForTest(`SELECT 1::bigint FROM (SELECT pg_advisory_xact_lock(7412993)) x`, func(int64) {})
	stop := f.handOff()
	defer stop()
	wrote := make(chan error, 1)
	go func() { wrote <- f.writeErr("a") }()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, hold.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1`, key).Scan(&n))
		return n > 0
	}, 10*time.Second, 5*time.Millisecond, "the write never reached its COMMIT")

	other := pgtest.Open(t, url, postgres.WithMaxConns(2))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	tasks, err := other.ClaimDue(ctx, time.Now(), 10, time.Minute, 100, 3)
	stalled := errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil
	_, _ = hold.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
	held = false
	require.NoError(t, <-wrote)
	require.False(t, stalled, "another instance's claim of an unrelated, long-committed event waited %v for a write's COMMIT (err %v)", 3*time.Second, err)
	require.Len(t, tasks, 1)
}

func (f *handoffFixture) writeErr(ids ...string) error {
	var evs []store.Event
	for _, id := range ids {
		evs = append(evs, store.Event{SubscriptionID: id, Timestamp: time.Now().Add(-time.Second), Topic: "https://example.org/topic",
			FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate})
	}
	return f.st.InTx(context.Background(), func(tx store.Tx) error { return tx.AppendEventsAtCommit(context.Background(), evs) })
}
