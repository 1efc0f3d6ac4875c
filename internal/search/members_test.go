package search

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMembersReadWhatMatchingSortingAndIncludesRead: over the R4 examples, a
// resource decoded with only the members a criteria and sort keys need
// (Members) matches (:missing true and false) and sorts (both ways)
// exactly as the whole one, for every supported parameter of its type.
// The api package's property test compares REST search, which decodes
// this way, with the Subscription matcher, which decodes everything.
func TestMembersReadWhatMatchingSortingAndIncludesRead(t *testing.T) {
	paths, _ := filepath.Glob("../r4/testdata/examples/*.json")
	require.NotEmpty(t, paths)
	checked, refs := 0, 0
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		full, err := NewStoredResource(raw)
		if err != nil {
			continue // not a resource the matcher reads
		}
		typ := full.Type()
		for _, prm := range Params(typ) {
			if !prm.Supported() {
				continue
			}
			for _, q := range []string{prm.Code + ":missing=true", prm.Code + ":missing=false"} {
				c, err := ParseCriteria(typ, q)
				if err != nil {
					continue
				}
				part, err := NewStoredResourceOf(raw, Members(typ, c, nil))
				require.NoError(t, err)
				want, _ := c.Match(full)
				got, _ := c.Match(part)
				require.Equal(t, want, got, "%s %s", filepath.Base(p), q)
				checked++
			}
			if Sortable(typ, prm.Code) {
				part, err := NewStoredResourceOf(raw, Members(typ, nil, []string{prm.Code}))
				require.NoError(t, err)
				for _, desc := range []bool{false, true} {
					require.Equal(t, full.SortKey(prm.Code, desc), part.SortKey(prm.Code, desc), "%s _sort=%s", filepath.Base(p), prm.Code)
				}
				checked++
			}
			if prm.Type == TypeReference {
				// _include reads a source's references from its members
				// too (resources.Service.references).
				part, err := NewStoredResourceOf(raw, Members(typ, nil, []string{prm.Code}))
				require.NoError(t, err)
				require.Equal(t, full.References(prm.Code), part.References(prm.Code), "%s _include=%s:%s", filepath.Base(p), typ, prm.Code)
				refs += len(full.References(prm.Code))
			}
		}
	}
	require.Greater(t, checked, 1000)
	require.Greater(t, refs, 500, "references compared")
}

// TestMembersAreFew: a patient's Observations by category and date, sorted
// by date, read a handful of members, not the whole resource.
func TestMembersAreFew(t *testing.T) {
	c, err := ParseCriteria("Observation", "patient=Patient/p1&category=laboratory&date=ge2000-01-01")
	require.NoError(t, err)
	m := Members("Observation", c, []string{"date"})
	require.NotNil(t, m)
	for _, want := range []string{"resourceType", "id", "subject", "category", "effectiveDateTime"} {
		require.True(t, m[want], "%s in %v", want, m)
	}
	require.False(t, m["component"])
	require.False(t, m["valueQuantity"])
	require.Nil(t, Members("Patient", c, nil), "criteria of another type")
}
