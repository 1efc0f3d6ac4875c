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

// TestMatchedSearchesHoldOneCandidateAtATime: a search the index cannot
// decide (a granular grant with a system, :text, :not, dates …) runs the
// matcher over candidates. Before, every batch of candidates (up to 1,024
// rows of up to HERALD_MAX_BODY_BYTES each) was read into memory before
// the matcher saw the first, and a count (_total=accurate, _summary=count)
// kept every match: one small request held the whole type's bodies (300
// Observations of 512 KB: +153 MB of heap for a count, +120 MB for a
// _count=1 page whose candidates all fail). Now candidates are decoded one
// at a time and only what the page keeps stays. The heap is read inside
// the matcher, at each candidate: no sampling, no timing. Not parallel, so
// no other test allocates meanwhile.
func TestMatchedSearchesHoldOneCandidateAtATime(t *testing.T) {
	st := pgtest.New(t)
	ctx := context.Background()
	const n, size = 64, 1 << 20
	pad := strings.Repeat("x", size)
	now := time.Now().Truncate(time.Millisecond)
	for i := 0; i < n; i += 16 {
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			for j := i; j < i+16; j++ {
				id := fmt.Sprintf("o%03d", j)
				err := tx.Put(ctx, store.Version{Type: "Observation", ID: id, VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
					Body: []byte(`{"resourceType":"Observation","id":"` + id + `","status":"final","note":[{"text":"` + pad + `"}]}`), Index: []string{}})
				if err != nil {
					return err
				}
			}
			return nil
		}))
	}
	pad = ""
	// grown runs fn with a matcher that accepts per accept, and returns the
	// most the heap grew, read at each candidate the matcher saw.
	grown := func(accept bool, fn func(match func(store.Version) bool)) (peak uint64) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		base := m.HeapInuse
		fn(func(store.Version) bool {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base {
				peak = max(peak, m.HeapInuse-base)
			}
			return accept
		})
		return peak
	}
	const bound = 24 << 20 // a few candidates, far below the 64 MB of them all

	peak := grown(true, func(match func(store.Version) bool) {
		c, err := st.Count(ctx, store.SearchQuery{Type: "Observation", Match: match})
		require.NoError(t, err)
		require.Equal(t, n, c)
	})
	require.Less(t, peak, uint64(bound), "a count holds every match (%d MB)", peak>>20)

	peak = grown(false, func(match func(store.Version) bool) {
		vs, err := st.Search(ctx, store.SearchQuery{Type: "Observation", Count: 2, Match: match})
		require.NoError(t, err)
		require.Empty(t, vs)
	})
	require.Less(t, peak, uint64(bound), "a page holds its batch of candidates (%d MB)", peak>>20)

	var got []store.Version
	peak = grown(true, func(match func(store.Version) bool) {
		var err error
		got, err = st.Search(ctx, store.SearchQuery{Type: "Observation", Count: 3, AfterID: "o010", Match: match})
		require.NoError(t, err)
	})
	require.Equal(t, []string{"o011", "o012", "o013"}, []string{got[0].ID, got[1].ID, got[2].ID}, "pages are as before")
	require.Less(t, peak, uint64(bound), "a page holds its batch of candidates (%d MB)", peak>>20)
}

// TestClaimReadsEachFocusBodyOnce: a claim reads each due Subscription's
// next events with their focus versions. Before, a version's body came
// (and stayed in memory) once per Subscription it fired for, outside
// HERALD_DELIVERY_CACHE_BYTES and whatever the payload content: 16 id-only
// Subscriptions, each owed the same 16 events of 1 MB, made one claim hold
// +260 MB (at the defaults, 32 x 100 events of up to 4 MB: 12.8 GB). Now
// each body is read once and shared.
func TestClaimReadsEachFocusBodyOnce(t *testing.T) {
	st := pgtest.New(t)
	ctx := context.Background()
	const subs, events, size = 16, 16, 1 << 20
	pad := strings.Repeat("x", size)
	body := func(id string) string {
		return `{"resourceType":"Observation","id":"` + id + `","note":[{"text":"` + pad + `"}]}`
	}
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		for j := range events {
			id := fmt.Sprintf("o%03d", j)
			if err := tx.Put(ctx, store.Version{Type: "Observation", ID: id, VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
				Body: []byte(body(id)), Index: []string{}}); err != nil {
				return err
			}
		}
		for i := range subs {
			if err := tx.PutSubscription(ctx, store.SubscriptionState{ID: fmt.Sprint("s", i), Owner: fmt.Sprint("owner-", i), Status: "active",
				Topic: "http://example.org/t", Endpoint: "https://hooks.example.org/x", Content: "id-only", CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			for j := range events {
				if _, err := tx.AppendEvent(ctx, store.Event{SubscriptionID: fmt.Sprint("s", i), Timestamp: now, Topic: "http://example.org/t",
					FocusType: "Observation", FocusID: fmt.Sprintf("o%03d", j), FocusVersion: 1, Method: store.MethodCreate}); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	tasks, err := st.ClaimDue(ctx, time.Now(), 32, time.Minute, 100, 0)
	require.NoError(t, err)
	runtime.ReadMemStats(&m)
	grown := int64(m.HeapInuse) - int64(base)
	require.Less(t, grown, int64(64<<20), "the claim holds each focus body once per Subscription (%d MB)", grown>>20)

	require.Len(t, tasks, subs)
	for _, tk := range tasks {
		require.NotEmpty(t, tk.Events) // fewer than owed when bodies pass store.ClaimEventBytes
		for k, e := range tk.Events {
			require.Equal(t, int64(k+1), e.Number)
			if e.Focus != nil { // nil: its body was not brought, the sender reads it
				require.Equal(t, body(e.FocusID), string(e.Focus.Body), "event %d of %s", e.Number, tk.State.ID)
			}
		}
	}
}
