package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
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
