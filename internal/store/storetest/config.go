package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// testConfigGeneration: every committed change of a SubscriptionTopic, the
// allow-list or the client registry moves the generation and signals
// ConfigChanges; other writes and rolled-back changes do not move it.
func testConfigGeneration(t *testing.T, s store.Store) {
	ctx := t.Context()
	changes := s.ConfigChanges()
	generation := func() int64 {
		n, err := s.ConfigGeneration(ctx)
		require.NoError(t, err)
		return n
	}
	waitSignal := func(what string) {
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no ConfigChanges signal after %s", what)
		}
	}
	put := func(v store.Version) error {
		return s.InTx(ctx, func(tx store.Tx) error { return tx.Put(ctx, v) })
	}
	g := generation()
	require.NoError(t, put(ver("Patient", "p1", 1)))
	require.Equal(t, g, generation(), "a clinical write is not configuration")
	require.ErrorIs(t, s.InTx(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.Put(ctx, ver("SubscriptionTopic", "rolled-back", 1)))
		return store.ErrConflict
	}), store.ErrConflict)
	require.Equal(t, g, generation(), "a rolled-back change")

	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"a topic write", func() error { return put(ver("SubscriptionTopic", "t1", 1)) }},
		{"an allow-list entry", func() error {
			return s.AddEndpoint(ctx, store.AllowedEndpoint{ID: "e1", URLPrefix: "https://hooks.example.org/", CreatedAt: at(1, 0)})
		}},
		{"an allow-list removal", func() error { return s.RemoveEndpoint(ctx, "e1") }},
		{"a client entry", func() error {
			_, err := s.PutClient(ctx, store.Client{ClientID: "c", Status: "suspended", MaxPayload: "empty", UpdatedAt: at(1, 0)})
			return err
		}},
	} {
		require.NoError(t, change.do(), change.what)
		require.Greater(t, generation(), g, change.what)
		g = generation()
		waitSignal(change.what)
	}
}

// testAdminAuditLog: every admin change leaves one entry, with its actor and
// the entry before and after; failed changes leave none.
func testAdminAuditLog(t *testing.T, s store.Store) {
	ctx := store.WithActor(t.Context(), "admin-1")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := store.AllowedEndpoint{ID: "e1", URLPrefix: "https://hooks.example.org/a/", Note: "n", CreatedAt: at}
	require.NoError(t, s.AddEndpoint(ctx, e))
	require.ErrorIs(t, s.AddEndpoint(ctx, e), store.ErrConflict)
	_, err := s.PutClient(ctx, store.Client{ClientID: "c1", Status: "active", MaxPayload: "id-only", UpdatedAt: at})
	require.NoError(t, err)
	_, err = s.PutClient(store.WithActor(t.Context(), "admin-2"), store.Client{ClientID: "c1", Status: "suspended", MaxPayload: "empty", UpdatedAt: at})
	require.NoError(t, err)
	require.NoError(t, s.RemoveEndpoint(ctx, "e1"))
	require.ErrorIs(t, s.RemoveEndpoint(ctx, "e1"), store.ErrNotFound)

	log, err := s.AuditLog(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, log, 4, "failed changes are not recorded")
	type row struct{ actor, action, target, before, after string }
	var got []row
	for _, a := range log {
		require.False(t, a.At.IsZero())
		got = append(got, row{a.Actor, a.Action, a.Target, compact(t, a.Before), compact(t, a.After)})
	}
	endpoint := `{"allow_private_network":false,"created_at":"2026-01-02T03:04:05Z","id":"e1","note":"n","url_prefix":"https://hooks.example.org/a/"}`
	client := func(status, payload string) string {
		return `{"client_id":"c1","max_payload":"` + payload + `","scope_ceiling":"","status":"` + status + `","updated_at":"2026-01-02T03:04:05Z"}`
	}
	require.Equal(t, []row{
		{"admin-1", store.AuditRemoveEndpoint, "e1", endpoint, ""},
		{"admin-2", store.AuditPutClient, "c1", client("active", "id-only"), client("suspended", "empty")},
		{"admin-1", store.AuditPutClient, "c1", "", client("active", "id-only")},
		{"admin-1", store.AuditAddEndpoint, "e1", "", endpoint},
	}, got, "newest first")
	require.Greater(t, log[0].Seq, log[1].Seq)

	older, err := s.AuditLog(t.Context(), log[1].Seq, 10)
	require.NoError(t, err)
	require.Len(t, older, 2)
	require.Equal(t, log[2].Seq, older[0].Seq, "paged by seq")
}

// compact is JSON with sorted keys (stores may reorder them), or "" for nil.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	if b == nil {
		return ""
	}
	var v any
	require.NoError(t, strictjson.Unmarshal(b, &v))
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}
