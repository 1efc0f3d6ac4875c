package postgres_test

import (
	"context"
	"fmt"
	"strings"
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

// TestSubscriptionLookupPlan: the publisher's look-up is a prepared
// statement, so its plan may be cached. With 20,000 Subscriptions on one
// topic, each pinned to its own patient, both the plan PostgreSQL uses once
// the statement has run often enough to consider a generic plan, and the
// generic plan itself, are ranges of subscriptions_topic_patient on topic,
// status and patient key: a write still reads only its patients' rows.
func TestSubscriptionLookupPlan(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(1))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	const topic = "https://example.org/SubscriptionTopic/t"
	_, err = conn.Exec(ctx, `INSERT INTO subscriptions (id, owner, scopes, patient, status, error, topic, filters, endpoint,
			content, heartbeat_period_ms, timeout_ms, max_count, sealed_secret, sealed_headers, created_at, updated_at,
			patient_key, owner_context, error_code, payload)
		SELECT 's' || g, 'c1', '', '', 'active', '', $1 || '|1.0.0', '{}', 'https://example.org/hook',
			'id-only', 0, 1000, 1, '', '', now(), now(), 'Patient/p' || g, 'system', '', 'application/fhir+json'
		FROM generate_series(1, 20000) g`, topic)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `ANALYZE subscriptions`)
	require.NoError(t, err)

	f := store.SubscriptionFilter{Status: []string{"requested", "active", "error"}, Topics: []string{topic + "|1.0.0", topic},
		ByPatient: true, PatientKeys: []string{"Patient/p7"}}
	for range 8 { // the store's own prepared statement, past the custom plans PostgreSQL starts with
		got, err := s.Subscriptions(ctx, f)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "s7", got[0].ID)
	}

	sql, args := postgres.SubscriptionsStatement(f)
	_, err = conn.Prepare(ctx, "lookup", sql)
	require.NoError(t, err)
	explain := func() string {
		t.Helper()
		for range 8 {
			_, err := conn.Exec(ctx, "lookup", args...)
			require.NoError(t, err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE lookup($1, $2, $3)", append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	for _, mode := range []string{"auto", "force_generic_plan"} {
		_, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode)
		require.NoError(t, err)
		plan := explain()
		require.Contains(t, plan, "subscriptions_topic_patient", "%s:\n%s", mode, plan)
		require.Regexp(t, `Index Cond: .*topic.*status.*patient_key`, plan, "%s:\n%s", mode, plan)
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", mode, plan)
	}
}

// TestSubscriptionLookupIsNotReplanned: the publisher's look-up, which runs
// in every write's transaction, uses its generic plan from the first call,
// never a plan made for its values (PostgreSQL judged those cheaper and so
// planned it for every write), and leaves the transaction's later
// statements to PostgreSQL's usual choice.
func TestSubscriptionLookupIsNotReplanned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t, postgres.WithMaxConns(1))
	now := time.Now().Truncate(time.Millisecond)
	const topic = "https://example.org/SubscriptionTopic/t"
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		for i := range 50 {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprint("s", i), Owner: "c", Status: "active", Topic: topic,
				Endpoint: "https://hooks.example.org/h", Content: "id-only", PatientKey: fmt.Sprint("Patient/p", i),
				CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	}))
	for i := range 12 {
		require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
			got, err := tx.Subscriptions(ctx, store.SubscriptionFilter{Status: []string{"requested", "active", "error"},
				Topics: []string{topic}, ByPatient: true, PatientKeys: []string{fmt.Sprint("Patient/p", i)}})
			if err != nil {
				return err
			}
			require.Len(t, got, 1)
			require.Equal(t, fmt.Sprint("s", i), got[0].ID)
			// The next statement runs under the usual setting again.
			mode, err := tx.(interface {
				QueryForTest(context.Context, string) (string, error)
			}).QueryForTest(ctx, `SHOW plan_cache_mode`)
			require.NoError(t, err)
			require.Equal(t, "auto", mode)
			return nil
		}))
	}
	generic, custom, err := s.PreparedPlansForTest(ctx, "FROM subscriptions WHERE true")
	require.NoError(t, err)
	require.Zero(t, custom, "plans made for the look-up's values")
	require.GreaterOrEqual(t, generic, int64(12))
}
