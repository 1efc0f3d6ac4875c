package search

import (
	"errors"
	"strings"

	"github.com/herald-fhir/herald/internal/fhir"
)

// Match reports whether r satisfies every clause. A resource of another type
// never matches. Element values the matcher cannot read (a malformed date, a
// string where an object belongs) are treated as absent. The only error is
// for a nil resource.
func (c *Criteria) Match(r *Resource) (bool, error) {
	if c == nil {
		return false, errors.New("search: nil criteria")
	}
	if r == nil || r.root == nil {
		return false, errNilResource
	}
	if r.typ != c.resourceType {
		return false, nil
	}
	for i := range c.clauses {
		if !c.clauses[i].match(r.root, r.base) {
			return false, nil
		}
	}
	return true, nil
}

// MatchJSON decodes raw and matches it; prefer NewResource once plus Match
// when testing several criteria against one resource.
func (c *Criteria) MatchJSON(raw []byte) (bool, error) {
	r, err := NewResource(raw)
	if err != nil {
		return false, err
	}
	return c.Match(r)
}

func (cl *clause) match(root map[string]any, base string) bool {
	if cl.composite != nil {
		return cl.compositeMatch(root, base)
	}
	switch cl.mod {
	case modMissing:
		return cl.present(root) != cl.missing
	case modNot:
		// FHIR :not — no element value matches; includes resources that have
		// no value at all. With several values: none of them matches.
		return !cl.anyLeaf(root, base)
	default:
		return cl.anyLeaf(root, base)
	}
}

func (cl *clause) anyLeaf(root map[string]any, base string) bool {
	for i := range cl.p.paths {
		pa := &cl.p.paths[i]
		if walk(root, pa.steps, func(v any) bool { return cl.leaf(pa, v, base) }) {
			return true
		}
	}
	return false
}

func (cl *clause) present(root map[string]any) bool {
	for i := range cl.p.paths {
		pa := &cl.p.paths[i]
		if walk(root, pa.steps, func(v any) bool { return leafPresent(pa, v) }) {
			return true
		}
	}
	return false
}

// compositeMatch: some element the composite selects satisfies every
// component of one of the values.
func (cl *clause) compositeMatch(root map[string]any, base string) bool {
	for i := range cl.p.paths {
		pa := &cl.p.paths[i]
		if walk(root, pa.steps, func(v any) bool {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			for _, subs := range cl.composite {
				all := true
				for j := range subs {
					if !subs[j].anyLeaf(m, base) {
						all = false
						break
					}
				}
				if all {
					return true
				}
			}
			return false
		}) {
			return true
		}
	}
	return false
}

// leafPresent reports whether a leaf carries a value for :missing.
func leafPresent(pa *path, v any) bool {
	switch x := v.(type) {
	case string:
		return x != ""
	case bool:
		return true
	case map[string]any:
		if pa.kind == kindReference && pa.target != "" {
			return refType(x) == pa.target
		}
		for k := range x {
			if k != "extension" && k != "id" {
				return true
			}
		}
		return false
	}
	_, isNum := num(v)
	return isNum
}

func (cl *clause) leaf(pa *path, v any, base string) bool {
	switch cl.p.Type {
	case TypeToken:
		return cl.tokenLeaf(pa.kind, v)
	case TypeReference:
		return cl.refLeaf(pa, v, base)
	case TypeString:
		return cl.stringLeaf(pa.kind, v)
	case TypeURI:
		s, _ := v.(string)
		return s != "" && cl.uriMatch(s)
	case TypeDate:
		return cl.dateLeaf(pa.kind, v)
	case TypeNumber:
		x, ok := num(v)
		if !ok {
			return false
		}
		for _, n := range cl.nums {
			if n.matchPoint(x) {
				return true
			}
		}
	case TypeQuantity:
		return cl.quantityLeaf(pa.kind, v)
	}
	return false
}

// ---- token ----

func (cl *clause) tokenLeaf(kind elemKind, v any) bool {
	switch kind {
	case kindString:
		s, _ := v.(string)
		return s != "" && cl.primitiveToken(s)
	case kindBoolean:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		if b {
			return cl.primitiveToken("true")
		}
		return cl.primitiveToken("false")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	switch kind {
	case kindCoding:
		if cl.mod == modText {
			return cl.textMatch(str(m, "display"))
		}
		return cl.sysCode(str(m, "system"), str(m, "code"))
	case kindCodeableConcept:
		if cl.mod == modText && cl.textMatch(str(m, "text")) {
			return true
		}
		codings, _ := m["coding"].([]any)
		for _, e := range codings {
			cm, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if cl.mod == modText {
				if cl.textMatch(str(cm, "display")) {
					return true
				}
			} else if cl.sysCode(str(cm, "system"), str(cm, "code")) {
				return true
			}
		}
	case kindIdentifier:
		if cl.mod == modOfType {
			return cl.ofType(m)
		}
		if cl.mod == modText {
			return false
		}
		return cl.sysCode(str(m, "system"), str(m, "value"))
	case kindContactPoint:
		if cl.mod == modText {
			return false
		}
		return cl.sysCode(str(m, "system"), str(m, "value"))
	}
	return false
}

// sysCode matches a coded value with a system: "code" ignores the system,
// "system|code" needs both, "|code" needs no system, "system|" any code.
func (cl *clause) sysCode(system, code string) bool {
	if system == "" && code == "" {
		return false
	}
	for i := range cl.tokens {
		t := &cl.tokens[i]
		if t.hasBar {
			if system == t.system && (t.code == "" || code == t.code) {
				return true
			}
		} else if code == t.code {
			return true
		}
	}
	return false
}

// primitiveToken matches code/string/uri/boolean elements, whose system is
// implicit: a system in the search value is not compared.
func (cl *clause) primitiveToken(s string) bool {
	if cl.mod == modText {
		return false
	}
	for i := range cl.tokens {
		t := &cl.tokens[i]
		if s == t.code || (t.hasBar && t.code == "") {
			return true
		}
	}
	return false
}

func (cl *clause) ofType(m map[string]any) bool {
	value := str(m, "value")
	typ, _ := m["type"].(map[string]any)
	codings, _ := typ["coding"].([]any)
	for i := range cl.tokens {
		t := &cl.tokens[i]
		if value != t.code {
			continue
		}
		for _, e := range codings {
			cm, ok := e.(map[string]any)
			if ok && str(cm, "system") == t.typeSystem && str(cm, "code") == t.typeCode {
				return true
			}
		}
	}
	return false
}

func (cl *clause) textMatch(s string) bool {
	if s == "" {
		return false
	}
	for _, n := range cl.strs {
		if foldPrefix(s, n) {
			return true
		}
	}
	return false
}

// ---- reference ----

// refType is the resource type a Reference points to, from its literal
// reference or else its type element.
func refType(m map[string]any) string {
	if _, typ, _, ok := splitRef(str(m, "reference")); ok && typ != "" {
		return typ
	}
	return str(m, "type")
}

func (cl *clause) refLeaf(pa *path, v any, base string) bool {
	if pa.kind == kindCanonical {
		s, _ := v.(string)
		return s != "" && cl.canonicalMatch(s)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if pa.target != "" && refType(m) != pa.target {
		return false
	}
	if cl.mod == modIdentifier {
		id, _ := m["identifier"].(map[string]any)
		return id != nil && cl.sysCode(str(id, "system"), str(id, "value"))
	}
	ref := str(m, "reference")
	if ref == "" {
		return false
	}
	for i := range cl.refs {
		if cl.refs[i].matches(ref, base) {
			return true
		}
	}
	return false
}

// matches compares a value with a literal reference of a resource stored at
// base. Local references (fhir.LocalReference) match only local values, by
// type and id; any other reference matches only a value with the same base,
// type and id: another server's Patient/p1 is never this server's.
func (r *refValue) matches(ref, base string) bool {
	typ, id, local := fhir.LocalReference(ref, base)
	switch r.kind {
	case refTyped:
		if vtyp, vid, vlocal := r.local(base); vlocal {
			return local && typ == vtyp && id == vid
		}
		rbase, rtyp, rid, ok := splitRef(ref)
		return !local && ok && rbase == r.base && rtyp == r.typ && rid == r.id
	case refID:
		return local && id == r.id
	case refRaw:
		return ref == r.raw
	}
	return false
}

// local is the value's local type and id: a value without a base always is
// ("Type/id", or an id typed by a modifier or the parameter's one target).
func (r *refValue) local(base string) (typ, id string, ok bool) {
	if r.base == "" {
		return r.typ, r.id, true
	}
	return fhir.LocalReference(r.raw, base)
}

// canonicalMatch compares a canonical/uri element with the values verbatim;
// a value without "|version" matches every version.
func (cl *clause) canonicalMatch(s string) bool {
	unv := s
	if i := strings.IndexByte(s, '|'); i >= 0 {
		unv = s[:i]
	}
	for i := range cl.refs {
		r := &cl.refs[i]
		if s == r.raw || (r.raw == r.unversion && unv == r.raw) {
			return true
		}
	}
	return false
}

// ---- string and uri ----

func (cl *clause) strMatch(s string) bool {
	if s == "" {
		return false
	}
	for _, n := range cl.strs {
		switch cl.mod {
		case modExact:
			if s == n {
				return true
			}
		case modContains:
			if foldContains(s, n) {
				return true
			}
		default:
			if foldPrefix(s, n) {
				return true
			}
		}
	}
	return false
}

// strParts matches the string or array-of-strings fields of m.
func (cl *clause) strParts(m map[string]any, fields ...string) bool {
	for _, f := range fields {
		switch x := m[f].(type) {
		case string:
			if cl.strMatch(x) {
				return true
			}
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok && cl.strMatch(s) {
					return true
				}
			}
		}
	}
	return false
}

func (cl *clause) stringLeaf(kind elemKind, v any) bool {
	switch kind {
	case kindHumanName:
		m, ok := v.(map[string]any)
		return ok && cl.strParts(m, "text", "family", "given", "prefix", "suffix")
	case kindAddress:
		m, ok := v.(map[string]any)
		return ok && cl.strParts(m, "text", "line", "city", "district", "state", "postalCode", "country")
	}
	s, _ := v.(string)
	return cl.strMatch(s)
}

func (cl *clause) uriMatch(s string) bool {
	unv := s
	if i := strings.IndexByte(s, '|'); i >= 0 {
		unv = s[:i]
	}
	for _, u := range cl.strs {
		switch cl.mod {
		case modBelow:
			if strings.HasPrefix(s, u) {
				return true
			}
		case modAbove:
			if strings.HasPrefix(u, unv) {
				return true
			}
		default:
			if s == u || (unv == u && strings.IndexByte(u, '|') < 0) {
				return true
			}
		}
	}
	return false
}

// ---- date ----

func (cl *clause) dateLeaf(kind elemKind, v any) bool {
	switch kind {
	case kindDate:
		s, _ := v.(string)
		iv, ok := parseDate(s)
		return ok && cl.dateMatch(iv)
	case kindPeriod:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		t := interval{minInf, maxInf}
		start, end := str(m, "start"), str(m, "end")
		if start == "" && end == "" {
			return false
		}
		if start != "" {
			iv, ok := parseDate(start)
			if !ok {
				return false
			}
			t.lo = iv.lo
		}
		if end != "" {
			iv, ok := parseDate(end)
			if !ok {
				return false
			}
			t.hi = iv.hi
		}
		return cl.dateMatch(t)
	case kindTiming:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		events, _ := m["event"].([]any)
		for _, e := range events {
			s, _ := e.(string)
			if iv, ok := parseDate(s); ok && cl.dateMatch(iv) {
				return true
			}
		}
	}
	return false
}

func (cl *clause) dateMatch(t interval) bool {
	for _, d := range cl.dates {
		if compareRanges(d.p, d.iv, t) {
			return true
		}
	}
	return false
}

// ---- quantity ----

func (cl *clause) quantityLeaf(kind elemKind, v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	switch kind {
	case kindQuantity:
		x, ok := num(m["value"])
		if !ok {
			return false
		}
		for i := range cl.qtys {
			q := &cl.qtys[i]
			if q.unitOK(str(m, "system"), str(m, "code"), str(m, "unit")) && q.n.matchPoint(x) {
				return true
			}
		}
	case kindMoney:
		x, ok := num(m["value"])
		if !ok {
			return false
		}
		cur := str(m, "currency")
		for i := range cl.qtys {
			q := &cl.qtys[i]
			if q.unitOK("urn:iso:std:iso:4217", cur, cur) && q.n.matchPoint(x) {
				return true
			}
		}
	case kindRange:
		low, _ := m["low"].(map[string]any)
		high, _ := m["high"].(map[string]any)
		lv, hasLow := num(low["value"])
		hv, hasHigh := num(high["value"])
		if !hasLow && !hasHigh {
			return false
		}
		for i := range cl.qtys {
			q := &cl.qtys[i]
			if hasLow && !q.unitOK(str(low, "system"), str(low, "code"), str(low, "unit")) {
				continue
			}
			if hasHigh && !q.unitOK(str(high, "system"), str(high, "code"), str(high, "unit")) {
				continue
			}
			if q.n.matchRange(lv, hv, hasLow, hasHigh) {
				return true
			}
		}
	}
	return false
}

// unitOK: number|system|code needs both; number||code matches code or unit.
func (q *qtyValue) unitOK(system, code, unit string) bool {
	switch {
	case q.system != "":
		return system == q.system && code == q.code
	case q.code != "":
		return code == q.code || unit == q.code
	}
	return true
}
