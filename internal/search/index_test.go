package search

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIndexTermsAreNecessary: for every example query that matches, each
// of its index terms meets the resource's keys (the one-sided contract);
// and the terms are selective: a query narrowed by them finds the keys of
// a matching resource, not everything.
func TestIndexTermsAreNecessary(t *testing.T) {
	t.Parallel()
	narrowed := 0
	for file, cases := range matchCases {
		r := load(t, file)
		keys := r.IndexKeys()
		require.True(t, slices.IsSorted(keys))
		for _, tc := range cases {
			c, err := ParseCriteria(r.Type(), tc.query)
			require.NoError(t, err)
			ok, err := c.Match(r)
			require.NoError(t, err)
			terms := c.IndexTerms(examplesBase)
			narrowed += len(terms)
			if !ok {
				continue
			}
			for _, term := range terms {
				require.True(t, slices.ContainsFunc(term, func(k string) bool { return slices.Contains(keys, k) }),
					"%s?%s matches %s but its term %v meets none of its keys %v", r.Type(), tc.query, file, term, keys)
			}
		}
	}
	require.Greater(t, narrowed, 50, "the examples exercise indexed clauses")
}

func TestIndexKeysOfAnEncounter(t *testing.T) {
	t.Parallel()
	keys := load(t, "Encounter-example").IndexKeys()
	require.Contains(t, keys, "Encounter.status=c:in-progress")
	require.Contains(t, keys, "Encounter.patient=r:Patient/example")
	require.Contains(t, keys, "Encounter.subject=i:example")
	require.NotContains(t, keys, "Encounter._id=c:example", "_id is answered from the id")
}
