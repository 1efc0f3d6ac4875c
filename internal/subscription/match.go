package subscription

import (
	"net/url"
	"strings"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/topic"
)

// MatchFilters reports whether a resource of type typ passes every filter
// (the backport IG ANDs them). A filter naming another resource type does
// not apply to this one. The filters were checked when the Subscription was
// written; one that no longer parses does not match (fail closed).
func MatchFilters(filters []string, typ string, r *search.Resource) bool {
	for _, raw := range filters {
		f, err := ParseFilter(raw)
		if err != nil {
			return false
		}
		if f.ResourceType != "" && f.ResourceType != typ {
			continue
		}
		for _, p := range f.Params {
			name, value := topic.StandardFilter(typ, p.Name, p.Value)
			key := name
			if p.Modifier != "" {
				key += ":" + p.Modifier
			}
			c, err := topic.Compile(typ, criteriaTerm(key, value))
			if err != nil {
				return false
			}
			ok, err := c.Match(r)
			if err != nil || !ok {
				return false
			}
		}
	}
	return true
}

// criteriaTerm writes one filter parameter as a search.ParseCriteria term.
// ParseCriteria path-unescapes (a '+' is a plus), so a space must be %20:
// url.QueryEscape alone would turn the value "a b" into the value "a+b".
func criteriaTerm(key, value string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "+", "%20") + "=" + strings.ReplaceAll(url.QueryEscape(value), "+", "%20")
}
