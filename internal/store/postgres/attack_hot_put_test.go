package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// TestAttackHotPutPathsKeepTheQueue: PutSubscription's ON CONFLICT DO
// UPDATE paths on a due Subscription (another owner with due_at unchanged,
// status off, endpoint removed, requested again) keep subscription_due equal
// to the rows with due_at, and the claim counts the new owner under its cap.
func TestAttackHotPutPathsKeepTheQueue(t *testing.T) {
	t.Parallel()
	f, db := dueFixture(t)
	same := func(step string) {
		t.Helper()
		require.Equal(t, readDue(t, db, dueTruthSQL), readDue(t, db, dueQueueSQL), step)
	}
	put := func(id, owner, status, endpoint string) {
		t.Helper()
		now := time.Now().Add(-time.Minute)
		require.NoError(t, f.st.InTx(t.Context(), func(tx store.Tx) error {
			return tx.PutSubscription(t.Context(), store.SubscriptionState{ID: id, Owner: owner, Context: "system",
				Status: status, Topic: "https://example.org/topic", Endpoint: endpoint,
				Content: "id-only", CreatedAt: now, UpdatedAt: now})
		}))
	}
	const hook = "https://receiver.example/hook"
	put("a", "client-1", "active", hook)
	put("b", "client-1", "active", hook)
	f.write("a", "b")
	same("due")
	put("a", "client-2", "active", hook) // due_at unchanged, owner changed
	same("owner changed")
	var owner string
	require.NoError(t, db.QueryRow(t.Context(), `SELECT owner FROM subscription_due WHERE id = 'a'`).Scan(&owner))
	require.Equal(t, "client-2", owner)
	tasks, err := f.st.ClaimDue(t.Context(), time.Now(), 10, time.Minute, 100, 1)
	require.NoError(t, err)
	require.Len(t, tasks, 2, "one per owner under a cap of 1: a is client-2's now")
	for _, tk := range tasks {
		require.NoError(t, f.st.ReleaseLease(t.Context(), tk.State.ID, tk.Lease))
	}
	put("a", "client-2", "off", hook)
	same("off")
	put("b", "client-1", "active", "")
	same("endpoint removed")
	put("a", "client-3", "requested", hook)
	same("requested again")
	require.NoError(t, f.st.InTx(t.Context(), func(tx store.Tx) error { return tx.DeleteSubscription(t.Context(), "a") }))
	put("a", "client-4", "requested", hook) // re-created after a delete
	same("re-created")
}
