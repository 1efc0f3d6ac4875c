package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// testSearchMatchAndIndex: Match decides, Index only narrows. Versions
// carry a colour in their index keys and the matcher reads the same colour
// from a side table; the newest version's keys count, unknown keys (nil)
// keep a version a candidate, delete markers never match; pages are full.
func testSearchMatchAndIndex(t *testing.T, s store.Store) {
	ctx := t.Context()
	colour := map[string]string{} // "id/version" → colour
	version := func(id string, n int64, c string, indexed bool) store.Version {
		v := ver("Patient", id, n)
		colour[fmt.Sprintf("%s/%d", id, n)] = c
		if indexed {
			v.Index = []string{"Patient.colour=c:" + c}
		}
		return v
	}
	var want, byIndex []string
	for i := range 30 {
		id := fmt.Sprintf("p%02d", i)
		c := []string{"red", "blue", "green"}[i%3]
		put(t, s, version(id, 1, "red", i%2 == 0), version(id, 2, c, i%5 != 0))
		if c == "red" {
			want = append(want, id)
		}
		if c == "red" || i%5 == 0 {
			byIndex = append(byIndex, id) // red, or keys unknown
		}
	}
	gone := deleted("Patient", "p00", 3)
	put(t, s, gone)
	notGone := func(id string) bool { return id == "p00" }
	want = slices.DeleteFunc(want, notGone)
	byIndex = slices.DeleteFunc(byIndex, notGone)

	// Without a matcher the index decides: the newest version's keys, and
	// versions with unknown keys are kept.
	got, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Index: [][]string{{"Patient.colour=c:red"}}})
	require.NoError(t, err)
	require.Equal(t, byIndex, ids(got))

	q := store.SearchQuery{
		Type:  "Patient",
		Index: [][]string{{"Patient.colour=c:red", "Patient.colour=c:purple"}},
		Match: func(v store.Version) bool { return colour[fmt.Sprintf("%s/%d", v.ID, v.VersionID)] == "red" },
	}
	got, err = s.Search(ctx, q)
	require.NoError(t, err)
	require.Equal(t, want, ids(got), "the matcher decides; the index only narrows")

	// Count counts what Search returns, whatever the paging.
	n, err := s.Count(ctx, store.SearchQuery{Type: "Patient", Index: q.Index, Match: q.Match, Count: 1, AfterID: "p01"})
	require.NoError(t, err)
	require.Equal(t, len(want), n)
	n, err = s.Count(ctx, store.SearchQuery{Type: "Patient", Index: [][]string{{"Patient.colour=c:red"}}, BeforeID: "p05"})
	require.NoError(t, err)
	require.Equal(t, len(byIndex), n)

	// SearchTotal is Search and Count together: first pages (one read
	// where the store can) and later ones, with and without a matcher,
	// narrow or not, cut by count or bytes, or finding nothing.
	for _, tq := range []store.SearchQuery{
		{Type: "Patient", Index: q.Index, Match: q.Match, Count: 3},
		{Type: "Patient", Index: q.Index, Match: q.Match, Count: 3, AfterID: "p05"},
		{Type: "Patient", Index: q.Index, Match: q.Match, Count: 3, MaxBytes: 1},
		{Type: "Patient", Index: q.Index, Match: q.Match},
		{Type: "Patient", Index: q.Index, Count: 4, Narrow: true},
		{Type: "Patient", Index: q.Index, Count: 4, Narrow: true, MaxBytes: 1},
		{Type: "Patient", Index: q.Index, Count: 4, Narrow: true, BeforeID: "p20"},
		{Type: "Patient", Index: q.Index, Narrow: true},
		{Type: "Patient", Index: [][]string{{"Patient.colour=c:purple"}}, Count: 4, Narrow: true},
		{Type: "Patient", Index: q.Index, Count: 4},
		{Type: "Patient", IDs: []string{"p02", "p03", "p04"}, Count: 2},
		{Type: "Patient", Index: q.Index, Count: 2, Desc: true, Narrow: true},
	} {
		wantPage, err := s.Search(ctx, tq)
		require.NoError(t, err)
		wantN, err := s.Count(ctx, tq)
		require.NoError(t, err)
		page, n, err := s.SearchTotal(ctx, tq)
		require.NoError(t, err)
		require.Equal(t, ids(wantPage), ids(page), "%+v", tq)
		require.Equal(t, wantPage, page, "%+v", tq)
		require.Equal(t, wantN, n, "%+v", tq)
		whole := tq
		whole.Count, whole.AfterID, whole.BeforeID, whole.MaxBytes = 0, "", "", 0
		all, err := s.Search(ctx, whole)
		require.NoError(t, err)
		require.Equal(t, len(all), n, "a total counts every match, whatever cuts the page: %+v", tq)
	}

	var walked []string
	q.Count = 3
	for {
		page, err := s.Search(ctx, q)
		require.NoError(t, err)
		walked = append(walked, ids(page)...)
		if len(page) < q.Count {
			break
		}
		require.Len(t, page, q.Count, "pages are full")
		q.AfterID = page[len(page)-1].ID
	}
	require.Equal(t, want, walked)

	// Backwards from the end: each page is the last Count before its
	// successor's first id, still in id order.
	for _, match := range []func(store.Version) bool{q.Match, nil} {
		back := store.SearchQuery{Type: "Patient", Index: q.Index, Match: match, Count: 3, BeforeID: "zz"}
		all, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Index: q.Index, Match: match})
		require.NoError(t, err)
		var pages [][]string
		for {
			page, err := s.Search(ctx, back)
			require.NoError(t, err)
			require.True(t, slices.IsSortedFunc(page, func(a, b store.Version) int { return strings.Compare(a.ID, b.ID) }))
			if len(page) == 0 {
				break
			}
			pages = append(pages, ids(page))
			back.BeforeID = page[0].ID
		}
		slices.Reverse(pages)
		require.Equal(t, ids(all), slices.Concat(pages...), "backwards paging walks everything once")
		require.Len(t, pages[len(pages)-1], 3, "the page nearest the start of the walk is full")
	}
}

// testLockKeySerialisesCheckThenCreate: transactions that take the same
// key, then look for a resource and create one only when none exists,
// create exactly one between them (what conditional create relies on).
func testLockKeySerialisesCheckThenCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			<-start
			errs <- s.InTx(ctx, func(tx store.Tx) error {
				if err := tx.LockKey(ctx, "Device?identifier=x"); err != nil {
					return err
				}
				found, err := tx.Search(ctx, store.SearchQuery{Type: "Device"})
				if err != nil || len(found) > 0 {
					return err
				}
				return tx.Put(ctx, ver("Device", fmt.Sprintf("d%02d", i), 1))
			})
		}()
	}
	close(start)
	for range n {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-time.After(waitLimit):
			t.Fatal("a transaction did not finish")
		}
	}
	found, err := s.Search(ctx, store.SearchQuery{Type: "Device"})
	require.NoError(t, err)
	require.Len(t, found, 1)
}
