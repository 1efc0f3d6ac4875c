package postgres_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestPutSubscriptionKeepsDeliveryColumns: the delivery columns are not part
// of SubscriptionState, so replacing a state must not reset them; deleting
// the state drops them with the row. (Status requested and off do reset the
// schedule; the conformance suite covers that.)
func TestPutSubscriptionKeepsDeliveryColumns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })

	now := time.Now().Truncate(time.Millisecond)
	st := store.SubscriptionState{ID: "s1", Owner: "c1", Status: "requested", Topic: "http://example.org/t",
		Endpoint: "https://example.org/hook", Content: "id-only", CreatedAt: now, UpdatedAt: now}
	put := func(st store.SubscriptionState) {
		t.Helper()
		require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.PutSubscription(ctx, st) }))
	}
	put(st)

	type delivery struct {
		LastEventNumber  int64      `db:"last_event_number"`
		DeliveredThrough int64      `db:"delivered_through"`
		FailureCount     int        `db:"failure_count"`
		DueAt            *time.Time `db:"due_at"`
		LastSentAt       *time.Time `db:"last_sent_at"`
	}
	read := func() delivery {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT last_event_number, delivered_through, failure_count,
			due_at, last_sent_at FROM subscriptions WHERE id = 's1'`)
		require.NoError(t, err)
		d, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[delivery])
		require.NoError(t, err)
		return d
	}
	_, err = conn.Exec(ctx, `UPDATE subscriptions SET last_event_number = 7, delivered_through = 5,
		failure_count = 2, due_at = $1, last_sent_at = $2 WHERE id = 's1'`, now.Add(time.Minute), now)
	require.NoError(t, err)
	before := read()

	st.Status, st.UpdatedAt = "active", now.Add(time.Second)
	put(st)
	after := read()
	require.Equal(t, before.LastEventNumber, after.LastEventNumber)
	require.Equal(t, before.DeliveredThrough, after.DeliveredThrough)
	require.Equal(t, before.FailureCount, after.FailureCount)
	require.NotNil(t, after.DueAt)
	require.True(t, before.DueAt.Equal(*after.DueAt))
	require.NotNil(t, after.LastSentAt)
	require.True(t, before.LastSentAt.Equal(*after.LastSentAt))
	got, err := s.Subscription(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, "active", got.Status, "the state itself was replaced")

	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, "s1") }))
	put(st)
	require.Equal(t, delivery{}, read(), "a re-created state starts with fresh delivery columns")
}
