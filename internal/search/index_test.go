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
	narrowed, decided := 0, 0
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
			if c.IndexDecides(examplesBase) {
				holds := true
				for _, term := range terms {
					holds = holds && slices.ContainsFunc(term, func(k string) bool { return slices.Contains(keys, k) })
				}
				require.Equal(t, ok, holds, "%s?%s on %s: the index decides it, and must agree with the matcher", r.Type(), tc.query, file)
				decided++
			}
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
	require.Greater(t, decided, 20, "and clauses the index decides")
}

func TestIndexKeysOfAnEncounter(t *testing.T) {
	t.Parallel()
	keys := load(t, "Encounter-example").IndexKeys()
	require.Contains(t, keys, "Encounter.status=c:in-progress")
	require.Contains(t, keys, "Encounter.patient=r:Patient/example")
	require.Contains(t, keys, "Encounter.subject=i:example")
	require.NotContains(t, keys, "Encounter._id=c:example", "_id is answered from the id")
}

// TestNarrow: a clause whose index term is local references makes the
// criteria narrow; codes, unindexed clauses and foreign references do not.
func TestNarrow(t *testing.T) {
	for query, want := range map[string]bool{
		"patient=Patient/p1":                      true,
		"subject=p1&code=8867-4":                  true,
		"code=8867-4":                             false,
		"date=ge2000":                             false,
		"subject=https://other.example/Patient/1": false,
	} {
		c, err := ParseCriteria("Observation", query)
		if err != nil {
			t.Fatal(query, err)
		}
		if got := c.Narrow("https://herald.example/fhir"); got != want {
			t.Errorf("%s: Narrow = %v, want %v", query, got, want)
		}
	}
}
