package topic

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/topics"
)

// TestFollowSeesOtherWriters: a topic retired in the store by someone else
// (another instance) leaves the followed library, and topics the change did
// not touch keep their identity.
func TestFollowSeesOtherWriters(t *testing.T) {
	t.Parallel()
	st := memory.New()
	lib, err := Load(t.Context(), st, topics.FS, time.Now())
	require.NoError(t, err)
	const start = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	end, ok := lib.Lookup("https://herald.dev/fhir/SubscriptionTopic/encounter-end")
	require.True(t, ok)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Follow(ctx, st, lib, time.Hour, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })

	cur, err := st.Current(t.Context(), "SubscriptionTopic", "encounter-start")
	require.NoError(t, err)
	retired := []byte(`{"resourceType":"SubscriptionTopic","id":"encounter-start","url":"` + start + `","version":"1.0.0","status":"retired","resourceTrigger":[{"resource":"Encounter","supportedInteraction":["create"]}]}`)
	next := store.Next(&cur, "SubscriptionTopic", "encounter-start", store.MethodUpdate, time.Now())
	next.Body = retired
	require.NoError(t, st.InTx(t.Context(), func(tx store.Tx) error { return tx.Put(t.Context(), next) }))

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := lib.Lookup(start); !ok {
			break
		}
		require.False(t, time.Now().After(deadline), "the library still offers the retired topic")
		time.Sleep(5 * time.Millisecond) // polling the condition
	}
	again, ok := lib.Lookup("https://herald.dev/fhir/SubscriptionTopic/encounter-end")
	require.True(t, ok)
	require.Same(t, end, again, "an unchanged topic is kept as it was")
}

// TestFollowRefreshesOtherCaches: an allow-list change moves the
// configuration generation, and Follow refreshes the caches given with
// the library (the delivery's allow-list and registry cache).
func TestFollowRefreshesOtherCaches(t *testing.T) {
	t.Parallel()
	st := memory.New()
	lib, err := Load(t.Context(), st, topics.FS, time.Now())
	require.NoError(t, err)
	refreshed := make(chan struct{}, 16)
	refresh := func(context.Context) error { refreshed <- struct{}{}; return nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Follow(ctx, st, lib, time.Hour, slog.New(slog.DiscardHandler), refresh) }()
	t.Cleanup(func() { cancel(); <-done })
	<-refreshed // the first look

	require.NoError(t, st.AddEndpoint(t.Context(), store.AllowedEndpoint{URLPrefix: "https://hooks.example/"}))
	select {
	case <-refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("an allow-list change did not refresh the cache")
	}
}
