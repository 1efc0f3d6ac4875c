package search

import (
	"cmp"
	"strings"
)

// SortKey is what a resource sorts by for one parameter (_sort): the
// smallest of its values when sorting ascending, the largest descending.
// Numbers (date instants, numbers, quantities) and strings do not mix: a
// parameter yields one or the other.
type SortKey struct {
	Present  bool // false: the resource has no value and sorts last
	num      float64
	str      string
	isString bool
}

// Sortable reports whether code of resourceType can order a search.
func Sortable(resourceType, code string) bool {
	p := lookup(resourceType, code)
	return p != nil && p.Supported() && p.Type != TypeComposite && p.Type != TypeSpecial
}

// SortKey returns r's key for code, descending when desc.
func (r *Resource) SortKey(code string, desc bool) SortKey {
	var k SortKey
	if r == nil || r.root == nil || !Sortable(r.typ, code) {
		return k
	}
	p := lookup(r.typ, code)
	better := func(c SortKey) {
		if !k.Present || (desc && compareKeys(c, k) > 0) || (!desc && compareKeys(c, k) < 0) {
			k = c
		}
	}
	for i := range p.paths {
		pa := &p.paths[i]
		walk(r.root, pa.steps, func(v any) bool {
			for _, c := range leafKeys(p.Type, pa.kind, v, desc) {
				better(c)
			}
			return false
		})
	}
	return k
}

// CompareSortKeys orders keys ascending, absent keys last.
func CompareSortKeys(a, b SortKey) int {
	switch {
	case !a.Present && !b.Present:
		return 0
	case !a.Present:
		return 1
	case !b.Present:
		return -1
	}
	return compareKeys(a, b)
}

func compareKeys(a, b SortKey) int {
	if a.isString || b.isString {
		return strings.Compare(a.str, b.str)
	}
	return cmp.Compare(a.num, b.num)
}

func numKey(x float64) SortKey { return SortKey{Present: true, num: x} }

func strKey(s string) SortKey { return SortKey{Present: true, str: s, isString: true} }

// leafKeys are the sort keys of one element: dates by the start (ascending)
// or end (descending) of the range they denote.
func leafKeys(pt ParamType, kind elemKind, v any, desc bool) []SortKey {
	m, _ := v.(map[string]any)
	dateKey := func(s string) []SortKey {
		iv, ok := parseDate(s)
		if !ok {
			return nil
		}
		if desc {
			return []SortKey{numKey(float64(iv.hi))}
		}
		return []SortKey{numKey(float64(iv.lo))}
	}
	switch kind {
	case kindDate:
		s, _ := v.(string)
		return dateKey(s)
	case kindPeriod:
		if desc && str(m, "end") != "" {
			return dateKey(str(m, "end"))
		}
		return dateKey(str(m, "start"))
	case kindTiming:
		var out []SortKey
		events, _ := m["event"].([]any)
		for _, e := range events {
			s, _ := e.(string)
			out = append(out, dateKey(s)...)
		}
		return out
	case kindNumber:
		if x, ok := num(v); ok {
			return []SortKey{numKey(x)}
		}
	case kindQuantity, kindMoney:
		if x, ok := num(m["value"]); ok {
			return []SortKey{numKey(x)}
		}
	case kindRange:
		low, _ := m["low"].(map[string]any)
		if x, ok := num(low["value"]); ok {
			return []SortKey{numKey(x)}
		}
	case kindBoolean:
		if b, ok := v.(bool); ok {
			return []SortKey{strKey(map[bool]string{true: "true", false: "false"}[b])}
		}
	case kindString, kindCanonical:
		if s, _ := v.(string); s != "" {
			return []SortKey{stringKey(pt, s)}
		}
	case kindCoding:
		return nonEmpty(str(m, "code"))
	case kindCodeableConcept:
		codings, _ := m["coding"].([]any)
		for _, e := range codings {
			cm, _ := e.(map[string]any)
			if c := str(cm, "code"); c != "" {
				return []SortKey{strKey(c)}
			}
		}
		return nonEmpty(fold(str(m, "text")))
	case kindIdentifier, kindContactPoint:
		return nonEmpty(str(m, "value"))
	case kindReference:
		return nonEmpty(str(m, "reference"))
	case kindHumanName:
		return nonEmpty(fold(firstOf(m, "family", "text", "given")))
	case kindAddress:
		return nonEmpty(fold(firstOf(m, "text", "city", "line")))
	}
	return nil
}

func stringKey(pt ParamType, s string) SortKey {
	if pt == TypeString {
		return strKey(fold(s))
	}
	return strKey(s)
}

func nonEmpty(s string) []SortKey {
	if s == "" {
		return nil
	}
	return []SortKey{strKey(s)}
}

// firstOf is the first non-empty string (or first string of an array) of
// fields, in order.
func firstOf(m map[string]any, fields ...string) string {
	for _, f := range fields {
		switch x := m[f].(type) {
		case string:
			if x != "" {
				return x
			}
		case []any:
			for _, e := range x {
				if s, _ := e.(string); s != "" {
					return s
				}
			}
		}
	}
	return ""
}
