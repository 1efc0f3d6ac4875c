package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

// TestClaimBodiesBoundedPerTask: a claim brings at most
// store.ClaimEventBytes of focus bodies per Subscription (never fewer
// than its first event); the rest of its backlog waits for the next
// claim. Before, every claimed Subscription brought up to maxCount
// (100) events with their bodies, distinct ones each: 8 Subscriptions
// owed 24 distinct 1 MiB events made one claim hold +192 MiB (at the
// defaults, 32 x 100 x 4 MiB: 12.8 GB), all before a single send.
func TestClaimBodiesBoundedPerTask(t *testing.T) {
	st := pgtest.New(t)
	ctx := context.Background()
	const subs, events, size = 8, 24, 1 << 20
	pad := strings.Repeat("x", size)
	body := func(id string) string {
		return `{"resourceType":"Observation","id":"` + id + `","note":[{"text":"` + pad + `"}]}`
	}
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range subs {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprint("s", i), Owner: fmt.Sprint("owner-", i), Status: "active",
				Topic: "http://example.org/t", Endpoint: "https://hooks.example.org/x", Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			for j := range events {
				id := fmt.Sprintf("o%d-%03d", i, j)
				if err := tx.Put(ctx, store.Version{Type: "Observation", ID: id, VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
					Body: []byte(body(id)), Index: []string{}}); err != nil {
					return err
				}
				if _, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: fmt.Sprint("s", i), Timestamp: now, Topic: "http://example.org/t",
					FocusType: "Observation", FocusID: id, FocusVersion: 1, Method: store.MethodCreate}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	tasks, err := st.ClaimDue(ctx, time.Now(), 32, time.Minute, 100, 0)
	require.NoError(t, err)
	runtime.GC() // what the claim's tasks hold, not the garbage of reading it
	runtime.ReadMemStats(&m)
	grown := int64(m.HeapInuse) - int64(base)
	t.Logf("one claim of %d Subscriptions owed %d distinct %d KiB events each: heap +%d MiB", subs, events, size>>10, grown>>20)

	require.Len(t, tasks, subs)
	for _, tk := range tasks {
		require.NotEmpty(t, tk.Events)
		var bytes int
		for k, e := range tk.Events {
			require.Equal(t, int64(k+1), e.Number, "consecutive from the cursor")
			if e.Focus != nil {
				require.Equal(t, body(e.FocusID), string(e.Focus.Body))
				bytes += len(e.Focus.Body)
			}
		}
		require.LessOrEqual(t, bytes, store.ClaimEventBytes+size+200, "Subscription %s brought %d events, %d bytes of bodies", tk.State.ID, len(tk.Events), bytes)
	}
	require.Less(t, grown, int64(subs*(store.ClaimEventBytes+2*size)), "the claim holds every claimed Subscription's whole batch of bodies")
	runtime.KeepAlive(tasks)
}

// TestClaimTransfersOnlyWhatItKeeps: a capped claim runs under the claim
// lock (one claim at a time across every instance) and holds its claimed
// Subscriptions' row locks (a write appending an event to one waits) until
// its last row is read. The rows of bodies past store.ClaimEventBytes are
// dropped by ClaimDue, so PostgreSQL must not send them: at the defaults
// (32 Subscriptions x 100 events of 4 MiB) a claim otherwise streamed
// 12.8 GB, keeping 256 MiB, while every other instance's claims and the
// claimed Subscriptions' writes waited. Failed on main: 2 Subscriptions
// owed 12 distinct 1 MiB events sent 24 MiB for 18 MiB kept at most.
func TestClaimTransfersOnlyWhatItKeeps(t *testing.T) {
	st := pgtest.New(t)
	ctx := context.Background()
	const subs, events, size = 2, 12, 1 << 20
	pad := strings.Repeat("x", size)
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range subs {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprint("s", i), Owner: fmt.Sprint("owner-", i), Status: "active",
				Topic: "http://example.org/t", Endpoint: "https://hooks.example.org/x", Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			for j := range events {
				id := fmt.Sprintf("o%d-%03d", i, j)
				if err := tx.Put(ctx, store.Version{Type: "Observation", ID: id, VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
					Body: []byte(`{"resourceType":"Observation","id":"` + id + `","note":[{"text":"` + pad + `"}]}`), Index: []string{}}); err != nil {
					return err
				}
				if _, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: fmt.Sprint("s", i), Timestamp: now, Topic: "http://example.org/t",
					FocusType: "Observation", FocusID: id, FocusVersion: 1, Method: store.MethodCreate}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	sent, err := st.ClaimTransferForTest(ctx, time.Now(), 32, time.Minute, 100, 4)
	require.NoError(t, err)
	require.LessOrEqual(t, sent, subs*(store.ClaimEventBytes+size+200), "the claim's transaction streamed bodies it drops")
	require.Greater(t, sent, 0)
}
