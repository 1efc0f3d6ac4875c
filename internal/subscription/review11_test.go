package subscription

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// TestFilterValueWithSpaceIsMatchedAsPlus: ParseFilter (whose values
// authorization compares with granular scope values, both query-unescaped)
// reads "code=a+b" and "code=a%20b" as the value "a b"; compiling it with
// QueryEscape ("a+b") for search.ParseCriteria, which path-unescapes, made
// the matcher look for the code "a+b": a filter authorised for one value
// delivered resources with another.
func TestFilterValueWithSpaceIsMatchedAsPlus(t *testing.T) {
	t.Parallel()
	tp, err := topic.Parse([]byte(`{"resourceType":"SubscriptionTopic","id":"x","url":"https://example.org/x","status":"active",
		"resourceTrigger":[{"resource":"Observation","supportedInteraction":["create"]}],
		"canFilterBy":[{"resource":"Observation","filterParameter":"code"}]}`))
	require.NoError(t, err)
	obs := func(code string) *search.Resource {
		r, err := search.NewResource([]byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"code":"` + code + `"}]}}`))
		require.NoError(t, err)
		return r
	}
	for _, raw := range []string{"Observation?code=a+b", "Observation?code=a%20b"} {
		f, err := ParseFilter(raw)
		require.NoError(t, err)
		require.Equal(t, "a b", f.Params[0].Value, "what authorization compares")
		sub, err := compile(store.SubscriptionState{ID: "s", Topic: tp.URL, Filters: []string{raw}}, tp)
		require.NoError(t, err)
		require.True(t, sub.Matches("Observation", obs("a b"), nil), "%s: the value authorised (a b) does not match", raw)
		require.False(t, sub.Matches("Observation", obs("a+b"), nil), "%s: a resource with another code (a+b) matches", raw)
	}
}
