package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// testChanges: type and system history across resources, newest first with
// ties (same lastUpdated) by type, id and version descending; filters by
// type, patient and since; paging by position walks everything once.
func testChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	pa1, pa2 := ver("Patient", "a", 1, "a"), ver("Patient", "a", 2, "a")
	pb1 := ver("Patient", "b", 1, "b")
	ob1, ob2, ob3 := ver("Observation", "o", 1, "b"), ver("Observation", "o", 2, "b"), deleted("Observation", "o", 3)
	ob3.Patients = []string{"b"}
	put(t, s, pa1, pa2, pb1, ob1, ob2, ob3)
	all := []store.Version{ob3, pa2, ob2, pb1, pa1, ob1}

	for _, tc := range []struct {
		q    store.ChangesQuery
		want []store.Version
	}{
		{store.ChangesQuery{}, all},
		{store.ChangesQuery{Count: 2}, all[:2]},
		{store.ChangesQuery{Types: []string{"Patient"}}, []store.Version{pa2, pb1, pa1}},
		{store.ChangesQuery{Types: []string{"Patient", "Observation"}}, all},
		{store.ChangesQuery{Types: []string{"Encounter"}}, nil},
		{store.ChangesQuery{Patient: "b"}, []store.Version{ob3, ob2, pb1, ob1}},
		{store.ChangesQuery{Types: []string{"Patient"}, Patient: "b"}, []store.Version{pb1}},
		{store.ChangesQuery{Since: pa2.LastUpdated}, []store.Version{ob3, pa2, ob2}},
		{store.ChangesQuery{After: ptr(store.PositionOf(pa2))}, []store.Version{ob2, pb1, pa1, ob1}},
		{store.ChangesQuery{Types: []string{"Patient"}, After: ptr(store.PositionOf(pb1))}, []store.Version{pa1}},
		{store.ChangesQuery{Types: []string{"Patient"}, After: ptr(store.PositionOf(ob2))}, []store.Version{pb1, pa1}},
		// MaxBytes ends with the version whose body reaches it; a delete
		// marker has none.
		{store.ChangesQuery{MaxBytes: 1}, all[:2]},
		{store.ChangesQuery{MaxBytes: int64(len(pa2.Body) + 1)}, all[:3]},
		{store.ChangesQuery{Types: []string{"Patient"}, MaxBytes: int64(len(pa2.Body))}, []store.Version{pa2}},
		{store.ChangesQuery{Count: 1, MaxBytes: 1 << 20}, all[:1]},
	} {
		got, err := s.Changes(ctx, tc.q)
		require.NoError(t, err)
		requireVersions(t, tc.want, got, fmt.Sprintf("%+v", tc.q))
	}

	for _, types := range [][]string{nil, {"Patient"}} {
		var walked []store.Version
		q := store.ChangesQuery{Types: types, Count: 2}
		for {
			page, err := s.Changes(ctx, q)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			q.After = ptr(store.PositionOf(page[len(page)-1]))
		}
		want, err := s.Changes(ctx, store.ChangesQuery{Types: types})
		require.NoError(t, err)
		requireVersions(t, want, walked, "paging walks every version once")
	}

	// A transaction sees its own versions in history.
	err := s.InTx(ctx, func(tx store.Tx) error {
		pa3 := ver("Patient", "a", 3, "a")
		require.NoError(t, tx.Put(ctx, pa3))
		got, err := tx.Changes(ctx, store.ChangesQuery{Types: []string{"Patient"}, Count: 1})
		require.NoError(t, err)
		requireVersions(t, []store.Version{pa3}, got, "in the transaction")
		return nil
	})
	require.NoError(t, err)
}

func ptr[T any](v T) *T { return &v }
