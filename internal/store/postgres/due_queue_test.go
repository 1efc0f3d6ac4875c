package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// dueFixture is a Store on a schema of the test's own, its hand-off fixture
// (four free workers, a share of three) and a connection to read the schema.
func dueFixture(t *testing.T) (*handoffFixture, *pgx.Conn) {
	t.Helper()
	url := pgtest.URL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	db, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close(context.Background()) })
	return &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}, db
}

// dueRow is a row of subscription_due, or of subscriptions with due_at.
type dueRow struct {
	ID, Owner string
	DueAt     time.Time
}

func readDue(t *testing.T, db *pgx.Conn, sql string) []dueRow {
	t.Helper()
	rows, err := db.Query(t.Context(), sql)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dueRow])
	require.NoError(t, err)
	return out
}

const (
	dueTruthSQL = `SELECT id, owner, due_at FROM subscriptions WHERE due_at IS NOT NULL ORDER BY id`
	dueQueueSQL = `SELECT id, owner, due_at FROM subscription_due ORDER BY id`
)

// TestPerEventColumnsAreInNoIndex: the columns of subscriptions that every
// event or send changes are in none of its indexes, so that PostgreSQL
// updates the row in place (HOT) and the publisher's look-up, run in every
// write, does not read a dead index entry per event (migration 00022). It
// failed while due_at was in subscriptions_owner_due.
func TestPerEventColumnsAreInNoIndex(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	pgtest.Open(t, url) // migrated
	db, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer db.Close(context.Background())
	rows, err := db.Query(t.Context(), `
		SELECT i.indexrelid::regclass::text, a.attname
		FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid
		WHERE i.indrelid = 'subscriptions'::regclass
			AND (a.attnum = ANY(i.indkey)
				OR pg_get_expr(i.indpred, i.indrelid) LIKE '%' || a.attname || '%'
				OR pg_get_expr(i.indexprs, i.indrelid) LIKE '%' || a.attname || '%')
			AND a.attname IN ('due_at', 'lease_token', 'lease_until', 'last_event_number', 'delivered_through',
				'failure_count', 'last_sent_at', 'handshake_pending', 'error_since')`)
	require.NoError(t, err)
	type hit struct{ Index, Column string }
	hits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hit])
	require.NoError(t, err)
	require.Empty(t, hits, "an index of subscriptions covers a column every event or send changes")
}

// TestDueQueueMirrorsDueAt: subscription_due holds exactly the
// Subscriptions whose due_at is set, with that due_at and their owner,
// through creation, appends, a claim, a hand-off, outcomes, a retry and
// deletion (the trigger of migration 00022). The claim reads it.
func TestDueQueueMirrorsDueAt(t *testing.T) {
	t.Parallel()
	f, db := dueFixture(t)
	st := f.st
	mirrors := func(step string) int {
		t.Helper()
		want := readDue(t, db, dueTruthSQL)
		require.Equal(t, want, readDue(t, db, dueQueueSQL), step)
		return len(want)
	}

	f.put("a", "client-1", "requested") // owes its handshake: due
	f.put("b", "client-2", "active")
	f.put("c", "client-2", "off")
	require.Equal(t, 1, mirrors("after the puts"))

	f.write("b", "c")
	require.Equal(t, 3, mirrors("after the appends"))

	tasks := f.claim(3)
	require.Len(t, tasks, 3)
	mirrors("after the claim")
	for _, tk := range tasks {
		f.finish(store.DeliveryResult{SubscriptionID: tk.State.ID, Lease: tk.Lease, Sent: true, Handshaken: tk.State.ID == "a",
			DeliveredThrough: tk.LastEventNumber})
	}
	require.Equal(t, 0, mirrors("after the outcomes"))

	stop := f.handOff()
	f.write("b")
	require.Len(t, f.eng.take(), 1)
	mirrors("after a hand-off")
	stop()

	f.write("b")
	tasks = f.claim(3)
	require.Empty(t, tasks, "b is leased to the hand-off")
	require.NoError(t, st.RetryNow(t.Context(), "b", time.Now()))
	mirrors("after a retry")

	require.NoError(t, st.InTx(t.Context(), func(tx store.Tx) error { return tx.DeleteSubscription(t.Context(), "b") }))
	mirrors("after a delete")
}
