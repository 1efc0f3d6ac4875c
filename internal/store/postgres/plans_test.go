package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

type queryForTest interface {
	QueryForTest(context.Context, string) (string, error)
}

// oldIncludesSQL is the includes subquery herald_event_includes replaced
// (before a9175e0).
func oldIncludesSQL(text string) string {
	return `CASE WHEN ` + text + ` IS NOT NULL THEN coalesce((
		SELECT array_agg(CASE WHEN split_part(u.ref, '/', 4) <> '0' THEN u.ref
			ELSE r.type || '/' || r.id || '/_history/' || r.version_id END ORDER BY u.ord)
		FROM unnest(string_to_array(` + text + `, ' ')) WITH ORDINALITY AS u(ref, ord)
		LEFT JOIN resources r ON split_part(u.ref, '/', 4) = '0'
			AND r.type = split_part(u.ref, '/', 1) AND r.id = split_part(u.ref, '/', 2)
		WHERE split_part(u.ref, '/', 4) <> '0' OR r.id IS NOT NULL AND NOT r.deleted
	), '{}') END`
}

// TestEventIncludesFunctionIsTheSubquery: herald_event_includes gives what
// the subquery gave, in the same transaction as the writes it resolves.
func TestEventIncludesFunctionIsTheSubquery(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	now := time.Now().Truncate(time.Millisecond)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.Put(ctx, store.Version{Type: "Patient", ID: "old", VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
			Body: []byte(`{"resourceType":"Patient","id":"old"}`)})
	}))
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		for _, v := range []store.Version{
			{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: now, Method: store.MethodCreate, Body: []byte(`{"resourceType":"Patient","id":"p1"}`)},
			{Type: "Patient", ID: "p2", VersionID: 1, LastUpdated: now, Method: store.MethodCreate, Body: []byte(`{"resourceType":"Patient","id":"p2"}`)},
			{Type: "Patient", ID: "p2", VersionID: 2, LastUpdated: now, Method: store.MethodDelete, Deleted: true},
			{Type: "Patient", ID: "old", VersionID: 2, LastUpdated: now, Method: store.MethodUpdate, Body: []byte(`{"resourceType":"Patient","id":"old"}`)},
		} {
			if err := tx.Put(ctx, v); err != nil {
				return err
			}
		}
		for _, in := range []string{`NULL`, `''`, `'Patient/p1/_history/0'`, `'Patient/p2/_history/0'`, `'Patient/none/_history/0'`,
			`'Patient/old/_history/0'`, `'Observation/o/_history/3 Patient/p1/_history/0 Patient/none/_history/0 Patient/old/_history/0 Patient/p1/_history/1'`,
			`'Patient/p1/_history/0  Patient/p2/_history/0'`, `'Patient/p1/_history/00'`, `'Patient/p1'`} {
			got, err := tx.(queryForTest).QueryForTest(ctx, fmt.Sprintf(
				`SELECT coalesce(a::text, 'NULL') || ' / ' || coalesce(b::text, 'NULL') FROM (SELECT herald_event_includes(%s::text) a, %s b) x`,
				in, oldIncludesSQL(in+"::text")))
			if err != nil {
				return err
			}
			t.Log(in, "→", got)
			var a, b string
			_, _ = fmt.Sscanf(got, "%s / %s", &a, &b)
			require.Equal(t, b, a, in)
		}
		return nil
	}))
}

// TestSubscriptionLookupKeepsTheSessionPlanMode: after the look-up, the
// transaction's statements run under the session's plan_cache_mode, not
// under "auto" whatever the session's was (a database, role or connection
// setting, or the delivery pool's force_generic_plan).
func TestSubscriptionLookupKeepsTheSessionPlanMode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t) + "&options=-c%20plan_cache_mode%3Dforce_custom_plan"
	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(1))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		before, err := tx.(queryForTest).QueryForTest(ctx, `SHOW plan_cache_mode`)
		require.NoError(t, err)
		require.Equal(t, "force_custom_plan", before)
		for range 2 {
			if _, err := tx.Subscriptions(ctx, store.SubscriptionFilter{Status: []string{"active"},
				Topics: []string{"https://example.org/SubscriptionTopic/t"}}); err != nil {
				return err
			}
		}
		after, err := tx.(queryForTest).QueryForTest(ctx, `SHOW plan_cache_mode`)
		require.NoError(t, err)
		require.Equal(t, before, after, "the setting after the look-up")
		return nil
	}))
}
