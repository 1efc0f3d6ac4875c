package subscription

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
)

// TestFilterValueWithSpaceIsMatchedAsPlus: ParseFilter (whose values
// authorization compares with granular scope values, both query-unescaped)
// reads "code=a+b" and "code=a%20b" as the value "a b", but MatchFilters
// re-escapes that with QueryEscape ("a+b") and search.ParseCriteria
// path-unescapes it, so the matcher looks for the code "a+b": a filter
// authorised for one value delivers resources with another.
func TestFilterValueWithSpaceIsMatchedAsPlus(t *testing.T) {
	obs := func(code string) *search.Resource {
		r, err := search.NewResource([]byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"code":"` + code + `"}]}}`))
		require.NoError(t, err)
		return r
	}
	for _, raw := range []string{"Observation?code=a+b", "Observation?code=a%20b"} {
		f, err := ParseFilter(raw)
		require.NoError(t, err)
		require.Equal(t, "a b", f.Params[0].Value, "what authorization compares")
		require.True(t, MatchFilters([]string{raw}, "Observation", obs("a b")), "%s: the value authorised (a b) does not match", raw)
		require.False(t, MatchFilters([]string{raw}, "Observation", obs("a+b")), "%s: a resource with another code (a+b) matches", raw)
	}
}
