package topic

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/topics"
)

func TestLoadSeedsBuiltinsOnceAndRespectsAdmins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := memory.New()
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

	lib, err := Load(ctx, st, topics.FS, now)
	require.NoError(t, err)
	require.Len(t, lib.Active(), 7)
	require.Len(t, lib.Watching("Encounter"), 2, "encounter-start and encounter-end")
	require.Len(t, lib.Watching("Observation"), 1)
	require.Empty(t, lib.Watching("Basic"))

	// Idempotent: a second start stores nothing new.
	_, err = Load(ctx, st, topics.FS, now)
	require.NoError(t, err)
	h, err := st.History(ctx, store.HistoryQuery{Type: "SubscriptionTopic", ID: "encounter-start"})
	require.NoError(t, err)
	require.Len(t, h, 1)

	// An admin retires one and deletes another; restarts keep both decisions.
	put := func(id string, body []byte, deleted bool) {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			cur, err := tx.Lock(ctx, "SubscriptionTopic", id)
			require.NoError(t, err)
			v := store.Version{Type: "SubscriptionTopic", ID: id, VersionID: cur.VersionID + 1, Method: store.MethodUpdate, LastUpdated: now.Add(time.Hour), Deleted: deleted}
			if !deleted {
				r, err := fhir.Parse(body)
				require.NoError(t, err)
				v.Body = r.Stamp(id, v.VersionID, v.LastUpdated)
			} else {
				v.Method = store.MethodDelete
			}
			return tx.Put(ctx, v)
		}))
	}
	cur, err := st.Current(ctx, "SubscriptionTopic", "encounter-end")
	require.NoError(t, err)
	put("encounter-end", []byte(strings.Replace(string(cur.Body), `"status":"active"`, `"status":"retired"`, 1)), false)
	put("appointment-booked", nil, true)

	lib, err = Load(ctx, st, topics.FS, now)
	require.NoError(t, err)
	_, ok := lib.Lookup("https://herald.dev/fhir/SubscriptionTopic/encounter-end")
	require.False(t, ok, "retired by the admin")
	_, ok = lib.Lookup("https://herald.dev/fhir/SubscriptionTopic/appointment-booked")
	require.False(t, ok, "deleted by the admin, not revived")
	require.Len(t, lib.Active(), 5)

	// The same url|version stored under another id is not seeded twice.
	st2 := memory.New()
	r, err := fhir.Parse([]byte(strings.Replace(string(cur.Body), `"id":"encounter-end"`, `"id":"my-copy"`, 1)))
	require.NoError(t, err)
	require.NoError(t, st2.InTx(ctx, func(tx store.Tx) error {
		return tx.Put(ctx, store.Version{Type: "SubscriptionTopic", ID: "my-copy", VersionID: 1, Method: store.MethodUpdate, LastUpdated: now, Body: r.Stamp("my-copy", 1, now)})
	}))
	_, err = Load(ctx, st2, topics.FS, now)
	require.NoError(t, err)
	_, err = st2.Current(ctx, "SubscriptionTopic", "encounter-end")
	require.ErrorIs(t, err, store.ErrNotFound)
}
