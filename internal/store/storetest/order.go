package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// testSearchOrderBy: ByLastUpdated and Desc order the results (ties by id
// ascending either way), Offset skips in that order, with and without a
// matcher, and with Patient (Narrow); 150 resources, so a store reading
// candidates in batches continues each batch where the last ended.
func testSearchOrderBy(t *testing.T, s store.Store) {
	ctx := t.Context()
	var all []store.Version
	err := s.InTx(ctx, func(tx store.Tx) error {
		for i := range 150 {
			v := ver("Patient", fmt.Sprintf("p%03d", (i*37)%150), 1, "pat")
			v.LastUpdated = at(i%7, 0) // ties
			if err := tx.Put(ctx, v); err != nil {
				return err
			}
			all = append(all, v)
		}
		return nil
	})
	require.NoError(t, err)
	odd := func(v store.Version) bool { return v.ID[len(v.ID)-1]%2 == 1 }
	for _, tc := range []struct {
		byLastUpdated, desc bool
	}{{false, false}, {false, true}, {true, false}, {true, true}} {
		want := slices.Clone(all)
		slices.SortFunc(want, func(a, b store.Version) int {
			if tc.byLastUpdated {
				c := a.LastUpdated.Compare(b.LastUpdated)
				if tc.desc {
					c = -c
				}
				if c != 0 {
					return c
				}
				return strings.Compare(a.ID, b.ID)
			}
			if tc.desc {
				return strings.Compare(b.ID, a.ID)
			}
			return strings.Compare(a.ID, b.ID)
		})
		wantOdd := slices.DeleteFunc(slices.Clone(want), func(v store.Version) bool { return !odd(v) })
		for _, m := range []struct {
			match func(store.Version) bool
			want  []store.Version
		}{{nil, want}, {odd, wantOdd}} {
			for _, patient := range []string{"", "pat"} {
				for _, page := range [][2]int{{0, 0}, {0, 10}, {5, 10}, {60, 30}, {70, 200}, {149, 5}, {200, 5}} {
					offset, count := page[0], page[1]
					name := fmt.Sprintf("byLastUpdated %v, desc %v, match %v, patient %q, offset %d, count %d", tc.byLastUpdated, tc.desc, m.match != nil, patient, offset, count)
					got, err := s.Search(ctx, store.SearchQuery{Type: "Patient", ByLastUpdated: tc.byLastUpdated, Desc: tc.desc,
						Offset: offset, Count: count, Match: m.match, Patient: patient})
					require.NoError(t, err, name)
					exp := m.want[min(offset, len(m.want)):]
					if count > 0 {
						exp = exp[:min(count, len(exp))]
					}
					require.Equal(t, ids(exp), ids(got), name)
				}
			}
		}
	}
}
