package postgres_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestOwnerCapAcrossInstances: two Stores on one schema (two Herald
// instances) claim at once, again and again, while Subscriptions of the
// same owners keep becoming due earlier than the rest (new requested ones,
// as a client's creates make them). No owner ever holds more leases than
// perOwner, however the claims interleave.
//
// What the claimers hold is tracked in the test: a claim's tasks are added
// after ClaimDue returns and removed before their leases are released, so
// the tracked set is never larger than what the table holds leased, and a
// tracked count above the cap is a real excess.
func TestOwnerCapAcrossInstances(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	var stores []*postgres.Store
	for range 2 {
		s := pgtest.Open(t, url, postgres.WithMaxConns(6))
		stores = append(stores, s)
	}
	const (
		perOwner = 3
		owners   = 2
		rounds   = 150
		claimers = 5 // per Store
	)
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var created atomic.Int64
	put := func(s store.Store, owner int) error {
		n := created.Add(1)
		at := base.Add(-time.Duration(n) * time.Second) // due before every earlier one
		return s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.PutSubscription(t.Context(), store.SubscriptionState{
				ID: fmt.Sprintf("s%06d", n), Owner: fmt.Sprintf("owner-%d", owner), Context: "system",
				Status: "requested", Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
				Content: "id-only", CreatedAt: at, UpdatedAt: at,
			})
		})
	}
	for i := range 20 * owners {
		require.NoError(t, put(stores[0], i%owners))
	}

	var mu sync.Mutex
	held := map[string]int{} // owner → leases a claimer holds
	most := 0
	var excess []string
	now := base.Add(time.Hour)
	for round := range rounds {
		var claimed, released sync.WaitGroup
		start, release := make(chan struct{}), make(chan struct{})
		for _, s := range stores {
			for range claimers {
				claimed.Add(1)
				released.Go(func() {
					<-start
					tasks, err := s.ClaimDue(t.Context(), now, perOwner, time.Minute, 0, perOwner)
					assertNoError(t, err)
					mu.Lock()
					for _, tk := range tasks {
						held[tk.State.Owner]++
						most = max(most, held[tk.State.Owner])
						if held[tk.State.Owner] > perOwner {
							excess = append(excess, fmt.Sprintf("round %d: %s holds %d", round, tk.State.Owner, held[tk.State.Owner]))
						}
					}
					mu.Unlock()
					claimed.Done()
					<-release // every claim of the round holds its leases until all have claimed
					for _, tk := range tasks {
						mu.Lock()
						held[tk.State.Owner]--
						mu.Unlock()
						assertNoError(t, s.ReleaseLease(t.Context(), tk.State.ID, tk.Lease))
					}
				})
			}
			claimed.Add(1)
			released.Go(func() { // a client's create, due before everything else
				<-start
				assertNoError(t, put(s, round%owners))
				claimed.Done()
			})
		}
		close(start)
		claimed.Wait()
		close(release)
		released.Wait()
	}
	t.Logf("most leases one owner held at once: %d (cap %d)", most, perOwner)
	require.Empty(t, excess, "an owner held more than perOwner leases")
}

// assertNoError reports err from any goroutine, and whether there was none.
func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestDeletedLeasesArePrunedOnceEnded: the lease of a Subscription deleted
// while being sent stays (it counts toward its owner's share, storetest
// QueueOwnerCapCountsDeletedLeases) while it lasts, and the retention job
// removes it once it has ended, so deleted Subscriptions leave nothing
// behind.
func TestDeletedLeasesArePrunedOnceEnded(t *testing.T) {
	t.Parallel()
	st := pgtest.New(t)
	ctx := t.Context()
	past := time.Now().Add(-time.Hour)
	for _, id := range []string{"long", "short"} {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			return tx.PutSubscription(ctx, store.SubscriptionState{ID: id, Owner: "client-" + id, Context: "system",
				Status: "requested", Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
				Content: "id-only", CreatedAt: past, UpdatedAt: past})
		}))
	}
	tasks, err := st.ClaimDue(ctx, time.Now(), 1, time.Hour, 0, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	long := tasks[0].State.ID
	tasks, err = st.ClaimDue(ctx, time.Now(), 1, 50*time.Millisecond, 0, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	require.NotEqual(t, long, tasks[0].State.ID)
	for _, id := range []string{"long", "short"} {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error { return tx.DeleteSubscription(ctx, id) }))
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := st.PruneEvents(ctx, time.Now(), 0)
		require.NoError(t, err)
		n, err := st.LeaseRowsForTest(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1, "the live lease of the deleted Subscription was pruned")
		if n == 1 {
			break // the ended one is gone, the live one stays
		}
		require.True(t, time.Now().Before(deadline), "the ended lease of a deleted Subscription was never pruned")
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond): // the short lease ends by the database's clock
		}
	}
}
