package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// keyed is version 1 of Observation/id with index keys and patients.
func keyed(id string, index []string, patients ...string) store.Version {
	v := ver("Observation", id, 1, patients...)
	v.Index = index
	return v
}

// testSearchWithin: SearchQuery.Within keeps what lies within at least one
// bound (a patient's compartment and every index term of it), and a
// resource whose keys are unknown lies within no bound that has terms.
func testSearchWithin(t *testing.T, s store.Store) {
	put(t, s,
		keyed("lab-p1", []string{"cat=lab"}, "p1"),
		keyed("lab-p2", []string{"cat=lab"}, "p2"),
		keyed("vit-p1", []string{"cat=vital"}, "p1"),
		keyed("vit-p2", []string{"cat=vital"}, "p2"),
		keyed("unknown", nil, "p1"),
	)
	search := func(within ...store.Bound) []string {
		t.Helper()
		vs, err := s.Search(t.Context(), store.SearchQuery{Type: "Observation", Within: within})
		require.NoError(t, err)
		return ids(vs)
	}
	lab := store.Bound{Index: [][]string{{"cat=lab"}}}
	require.Equal(t, []string{"lab-p1", "lab-p2"}, search(lab))
	require.Equal(t, []string{"lab-p1"}, search(store.Bound{Patient: "p1", Index: lab.Index}))
	require.Equal(t, []string{"lab-p1", "lab-p2", "unknown", "vit-p1"}, search(lab, store.Bound{Patient: "p1"}), "bounds are ORed")
	require.Equal(t, []string{"lab-p1", "lab-p2", "vit-p1", "vit-p2"}, search(store.Bound{Index: [][]string{{"cat=lab", "cat=vital"}}}), "unknown keys are outside")
	n, err := s.Count(t.Context(), store.SearchQuery{Type: "Observation", Within: []store.Bound{lab}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// testSearchNarrowSamePages: Narrow changes how a store reads, never what:
// every page, forwards and backwards, is the same with it and without.
func testSearchNarrowSamePages(t *testing.T, s store.Store) {
	for i := range 30 {
		patient, cat := "p1", "cat=lab"
		if i%3 == 0 {
			patient = "p2"
		}
		if i%2 == 0 {
			cat = "cat=vital"
		}
		put(t, s, keyed(fmt.Sprintf("o%02d", i), []string{cat, "ref=" + patient}, patient))
	}
	for _, q := range []store.SearchQuery{
		{Type: "Observation", Index: [][]string{{"ref=p1"}}, Count: 4},
		{Type: "Observation", Patient: "p1", Index: [][]string{{"cat=lab"}}, Count: 3},
		{Type: "Observation", Index: [][]string{{"ref=p1"}}, Count: 4, AfterID: "o10"},
		{Type: "Observation", Index: [][]string{{"ref=p1"}}, Count: 4, BeforeID: "o20"},
		{Type: "Observation", Index: [][]string{{"ref=p2"}}, Count: 2, BeforeID: "o20", Match: func(v store.Version) bool { return v.ID != "o15" }},
	} {
		plain, err := s.Search(t.Context(), q)
		require.NoError(t, err)
		require.NotEmpty(t, plain)
		q.Narrow = true
		narrow, err := s.Search(t.Context(), q)
		require.NoError(t, err)
		require.Equal(t, ids(plain), ids(narrow))
	}
}
