package subscription

import (
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// Compiler turns Subscription states into policy.Subscriptions, once per
// version and topic: publish, delivery and $status/$events decide and
// match with the compiled value and never parse filters or scopes again.
type Compiler struct {
	Topics *topic.Library

	mu    sync.Mutex
	cache map[string]compiled
}

// compiled is one cached compilation and what it was compiled from.
type compiled struct {
	from  store.SubscriptionState
	topic *topic.Topic
	sub   *policy.Subscription
}

// maxCompiled bounds the cache; it starts again when full.
const maxCompiled = 200_000

// Compile returns st compiled against the topic library now. The topic no
// longer offered (absent, or not active, also when named with its version), or filters it no longer accepts, are *fhir.Errors saying
// what to fix (422).
func (c *Compiler) Compile(st store.SubscriptionState) (*policy.Subscription, error) {
	t, ok := c.Topics.Lookup(st.Topic)
	if !ok || t.Status != "active" {
		// Lookup finds "url|version" whatever its status; only an active
		// topic may be subscribed to or sent under, however it is named.
		return nil, unknownTopic(st.Topic)
	}
	c.mu.Lock()
	hit, ok := c.cache[st.ID]
	c.mu.Unlock()
	if ok && hit.topic == t && sameVersion(hit.from, st) {
		return hit.sub, nil
	}
	sub, err := compile(st, t)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.cache == nil || len(c.cache) >= maxCompiled {
		c.cache = make(map[string]compiled)
	}
	c.cache[st.ID] = compiled{from: st, topic: t, sub: sub}
	c.mu.Unlock()
	return sub, nil
}

// sameVersion reports whether two states compile alike.
func sameVersion(a, b store.SubscriptionState) bool {
	return a.UpdatedAt.Equal(b.UpdatedAt) && a.Status == b.Status && a.End.Equal(b.End) &&
		a.Topic == b.Topic && a.Endpoint == b.Endpoint && a.Content == b.Content &&
		a.Owner == b.Owner && a.Context == b.Context && a.Patient == b.Patient && a.Scopes == b.Scopes &&
		slices.Equal(a.Filters, b.Filters)
}

func compile(st store.SubscriptionState, t *topic.Topic) (*policy.Subscription, error) {
	filters := make([]Filter, 0, len(st.Filters))
	for _, raw := range st.Filters {
		f, err := ParseFilter(raw)
		if err != nil {
			return nil, invalid("Subscription._criteria.extension", "%s", err)
		}
		filters = append(filters, f)
	}
	compiled, clauses, err := compileFilters(t, filters)
	if err != nil {
		return nil, err
	}
	return &policy.Subscription{
		ID: st.ID, Topic: st.Topic, Content: st.Content, Endpoint: st.Endpoint, Status: st.Status, End: st.End,
		Owner:    policy.Owner{Client: st.Owner, Context: st.Context, Patient: st.Patient, Scopes: auth.ParseScopes(strings.Fields(st.Scopes)...)},
		Notice:   auth.Notice{Types: t.ResourceTypes(), Filters: clauses},
		Includes: t.IncludedTypes(referenceTargets),
		Filters:  compiled,
	}, nil
}

// compileFilters checks each filter against the topic's canFilterBy and
// the search table, and compiles it for each type it applies to; the
// clauses are what authorization reads.
func compileFilters(t *topic.Topic, filters []Filter) ([]policy.Filter, []auth.FilterClause, error) {
	var out []policy.Filter
	var clauses []auth.FilterClause
	for _, f := range filters {
		types := t.ResourceTypes()
		if f.ResourceType != "" {
			if !t.TriggersOn(f.ResourceType) {
				return nil, nil, invalid("Subscription._criteria.extension", "filter %q names %s, but topic %s triggers on %s", clip(f.Raw), f.ResourceType, t.URL, strings.Join(types, ", "))
			}
			types = []string{f.ResourceType}
		}
		pf := policy.Filter{Raw: f.Raw, ResourceType: f.ResourceType, Criteria: make(map[string][]*search.Criteria, len(types))}
		for _, fp := range f.Params {
			for _, typ := range types {
				crit, err := compileParam(t, typ, f, fp)
				if err != nil {
					return nil, nil, err
				}
				pf.Criteria[typ] = append(pf.Criteria[typ], crit)
			}
			clauses = append(clauses, auth.FilterClause{ResourceType: f.ResourceType, Param: fp.Name, Modifier: fp.Modifier, Value: fp.Value})
		}
		out = append(out, pf)
	}
	return out, clauses, nil
}

// compileParam compiles one param[:modifier]=value of a filter for typ, as
// the topic allows it.
func compileParam(t *topic.Topic, typ string, f Filter, fp FilterParam) (*search.Criteria, error) {
	fd, ok := t.FilterFor(typ, fp.Name)
	if !ok {
		return nil, invalid("Subscription._criteria.extension", "filter parameter %q is not offered by topic %s for %s (canFilterBy: %s)", fp.Name, t.URL, typ, offered(t, typ))
	}
	if fp.Modifier != "" && !slices.Contains(fd.Modifiers, fp.Modifier) {
		return nil, invalid("Subscription._criteria.extension", "modifier :%s is not allowed on filter parameter %s by topic %s", fp.Modifier, fp.Name, t.URL)
	}
	name, value := topic.StandardFilter(typ, fp.Name, fp.Value)
	if fp.Modifier != "" {
		name += ":" + fp.Modifier
	}
	crit, err := topic.Compile(typ, criteriaTerm(name, value)) // shared: see policy's memo
	if err != nil {
		return nil, invalid("Subscription._criteria.extension", "filter %q: %s", clip(f.Raw), err)
	}
	if len(fd.Comparators) == 0 && len(fd.Modifiers) == 0 {
		for _, cl := range crit.Clauses() {
			if cmp := cl.Comparators(); len(cmp) > 0 && !(len(cmp) == 1 && cmp[0] == "eq") {
				return nil, invalid("Subscription._criteria.extension", "comparator %s is not allowed on filter parameter %s by topic %s", cmp[0], fp.Name, t.URL)
			}
		}
	}
	return crit, nil
}

// client is the registry's word on a client for the policy.
func policyClient(c store.Client) policy.Client {
	pc := policy.Client{Suspended: c.Status != "active", MaxPayload: c.MaxPayload}
	if strings.TrimSpace(c.ScopeCeiling) != "" {
		pc.Ceiling = auth.ParseScopes(strings.Fields(c.ScopeCeiling)...)
	}
	return pc
}

// criteriaTerm writes one filter parameter as a search.ParseCriteria term.
// ParseCriteria path-unescapes (a '+' is a plus), so a space must be %20:
// url.QueryEscape alone would turn the value "a b" into the value "a+b",
// matching something other than what authorization compared.
func criteriaTerm(key, value string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return esc(key) + "=" + esc(value)
}
