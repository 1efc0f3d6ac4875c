package topic

import (
	"fmt"
	"sync"

	"github.com/herald-fhir/herald/internal/search"
)

// Change is one committed resource write as the topic engine sees it.
// Prev is nil for a create; Cur is nil for a delete.
type Change struct {
	Type        string
	Interaction Interaction
	Prev, Cur   *search.Resource
}

// Fires reports whether the trigger fires for the change, following R5
// resourceTrigger semantics: the interaction must be supported; then the
// queryCriteria: previous is tested on the old version (resultForCreate
// stands in on create), current on the new one (resultForDelete stands in
// on delete); with both, requireBoth decides AND or OR; an absent test does
// not take part.
func (tr Trigger) Fires(c Change) (bool, error) {
	if tr.ResourceType != c.Type || !tr.supports(c.Interaction) {
		return false, nil
	}
	q := tr.Query
	if q == nil {
		return true, nil
	}
	var results []bool
	if q.Previous != "" {
		r := q.ResultForCreate
		if c.Interaction != Create {
			var err error
			if r, err = matches(c.Type, q.Previous, c.Prev); err != nil {
				return false, err
			}
		}
		results = append(results, r)
	}
	if q.Current != "" {
		r := q.ResultForDelete
		if c.Interaction != Delete {
			var err error
			if r, err = matches(c.Type, q.Current, c.Cur); err != nil {
				return false, err
			}
		}
		results = append(results, r)
	}
	switch {
	case len(results) == 0:
		return true, nil
	case len(results) == 1:
		return results[0], nil
	case q.RequireBoth:
		return results[0] && results[1], nil
	default:
		return results[0] || results[1], nil
	}
}

// Fires reports whether any of the topic's triggers fires for the change.
func (t *Topic) Fires(c Change) (bool, error) {
	for _, tr := range t.Triggers {
		ok, err := tr.Fires(c)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (tr Trigger) supports(in Interaction) bool {
	for _, s := range tr.Interactions {
		if s == in {
			return true
		}
	}
	return false
}

// criteriaCache holds compiled criteria by type and query: topics and
// filters repeat the same few queries on every write. Subscription filters
// come from clients, so the cache is bounded: when full it starts afresh.
var criteriaCache struct {
	sync.RWMutex
	m map[string]*search.Criteria // "Type?query"
}

const maxCachedCriteria = 10000

// Compile returns the compiled criteria for a query on a type, cached.
func Compile(typ, query string) (*search.Criteria, error) {
	key := typ + "?" + query
	criteriaCache.RLock()
	c, ok := criteriaCache.m[key]
	criteriaCache.RUnlock()
	if ok {
		return c, nil
	}
	c, err := search.ParseCriteria(typ, query)
	if err != nil {
		return nil, err
	}
	criteriaCache.Lock()
	if criteriaCache.m == nil || len(criteriaCache.m) >= maxCachedCriteria {
		criteriaCache.m = make(map[string]*search.Criteria)
	}
	criteriaCache.m[key] = c
	criteriaCache.Unlock()
	return c, nil
}

func matches(typ, query string, r *search.Resource) (bool, error) {
	if r == nil {
		return false, nil
	}
	c, err := Compile(typ, query)
	if err != nil {
		return false, fmt.Errorf("criteria %q on %s: %w", query, typ, err)
	}
	return c.Match(r)
}
