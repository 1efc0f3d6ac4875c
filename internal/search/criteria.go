package search

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Criteria is a parsed search query for one resource type ("Type?a=x&b=y"):
// its clauses are ANDed, the comma-separated values of one clause ORed.
// A Criteria is immutable and safe for concurrent use.
type Criteria struct {
	resourceType string
	clauses      []clause
}

// Clause is one "code[:modifier]=value[,value…]" term of a Criteria.
type Clause struct {
	// Param is the parameter's definition.
	Param Param
	// Code is the parameter code (without any "Type." prefix).
	Code string
	// Modifier is the modifier without its colon ("not", "missing", "exact",
	// or a resource type for reference parameters); empty when none.
	Modifier string
	// Values are the ORed values, percent-decoded and split on unescaped
	// commas; each keeps FHIR's backslash escapes for '|', '$' and '\'
	// ("\," is already unescaped).
	Values []string
}

type modKind uint8

const (
	modNone modKind = iota
	modMissing
	modNot
	modExact
	modContains
	modText
	modOfType
	modIdentifier
	modType // reference type modifier, e.g. subject:Patient
	modBelow
	modAbove
)

// clause is a compiled Clause.
type clause struct {
	Clause
	p       *Param
	mod     modKind
	missing bool // with modMissing: the wanted value

	tokens []tokenValue
	refs   []refValue
	strs   []string // folded (default, :contains) or exact (:exact, uri)
	dates  []dateValue
	nums   []numValue
	qtys   []qtyValue
	// composite: per ORed value, one single-valued clause per component
	composite [][]clause
}

type tokenValue struct {
	system, code string
	hasBar       bool // "system|code", "|code" or "system|"
	// :of-type (Identifier): type coding system|code and the value in code
	typeSystem, typeCode string
}

type refKind uint8

const (
	refTyped refKind = iota // Type/id, optionally with a base URL
	refID                   // a bare id, any target type
	refRaw                  // compared verbatim (urn:, canonical URLs, …)
)

type refValue struct {
	kind           refKind
	base, typ, id  string
	raw, unversion string // raw value; raw without "|version"
}

type dateValue struct {
	p  prefix
	iv interval
}

type qtyValue struct {
	n            numValue
	system, code string
}

// resultParams may appear in a search but not in criteria.
var resultParams = map[string]bool{
	"_sort": true, "_count": true, "_include": true, "_revinclude": true, "_summary": true,
	"_total": true, "_elements": true, "_contained": true, "_containedType": true,
	"_format": true, "_pretty": true, "_since": true, "_at": true, "_outputFormat": true,
}

// ParseQualified parses "Type?a=x&b=y" (or just "Type"). A leading base URL
// ("https://server/fhir/Encounter?…") is ignored.
func ParseQualified(query string) (*Criteria, error) {
	typ, q, _ := strings.Cut(query, "?")
	if i := strings.LastIndexByte(typ, '/'); i >= 0 && strings.Contains(typ, "://") {
		typ = typ[i+1:]
	}
	typ = strings.TrimPrefix(typ, "/")
	if typ == "" {
		return nil, fmt.Errorf("criteria %q has no resource type (expected Type?param=value)", query)
	}
	return ParseCriteria(typ, q)
}

// ParseCriteria parses the query part "a=x&b=y" of criteria on resourceType.
// Names and values are percent-decoded ('+' stays a plus sign, so instants
// such as 2025-01-01T00:00:00+01:00 can be written unencoded). A parameter may
// be written "Type.code" as in the Subscriptions backport's filter format.
// An empty query matches every resource of the type. Errors name the unknown
// or unsupported parameter, modifier, prefix or value.
func ParseCriteria(resourceType, query string) (*Criteria, error) {
	if !IsResourceType(resourceType) {
		return nil, fmt.Errorf("unknown resource type %q", resourceType)
	}
	c := &Criteria{resourceType: resourceType, clauses: make([]clause, 0, strings.Count(query, "&")+1)}
	for part := range strings.SplitSeq(strings.TrimPrefix(query, "?"), "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("search term %q has no '='", part)
		}
		key, err := url.PathUnescape(rawKey)
		if err != nil {
			return nil, fmt.Errorf("search term %q: bad percent-encoding", part)
		}
		val, err := url.PathUnescape(rawVal)
		if err != nil {
			return nil, fmt.Errorf("search term %q: bad percent-encoding", part)
		}
		cl, err := parseClause(resourceType, key, val)
		if err != nil {
			return nil, err
		}
		c.clauses = append(c.clauses, cl)
	}
	return c, nil
}

// ResourceType is the type the criteria apply to.
func (c *Criteria) ResourceType() string { return c.resourceType }

// Clauses returns the ANDed clauses in query order.
func (c *Criteria) Clauses() []Clause {
	out := make([]Clause, len(c.clauses))
	for i := range c.clauses {
		out[i] = c.clauses[i].Clause
		out[i].Values = append([]string(nil), out[i].Values...)
	}
	return out
}

// String renders the criteria as "Type?code[:modifier]=values&…", with the
// characters that need it percent-encoded.
func (c *Criteria) String() string {
	var b strings.Builder
	b.WriteString(c.resourceType)
	for i, cl := range c.clauses {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(cl.Code)
		if cl.Modifier != "" {
			b.WriteByte(':')
			b.WriteString(cl.Modifier)
		}
		b.WriteByte('=')
		for j, v := range cl.Values {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(escapeValue(v))
		}
	}
	return b.String()
}

func escapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ',':
			b.WriteString(`\,`)
		case c == '%' || c == '&' || c == '#' || c == '=' || c <= ' ' || c >= 0x7f:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ReferenceKeys returns, for a reference clause without modifier (or with a
// type modifier), the "Type/id" every ORed value denotes, for indexing
// subscriptions by the resource they follow. ok is false when some value has
// no single type (a bare id on a parameter with several target types, a
// canonical URL, a urn) or the clause is not such a clause.
func (cl Clause) ReferenceKeys() (keys []string, ok bool) {
	if cl.Param.Type != TypeReference || (cl.Modifier != "" && !IsResourceType(cl.Modifier)) {
		return nil, false
	}
	p := &cl.Param
	for _, raw := range cl.Values {
		v, err := parseRef(p, cl.Modifier, raw)
		if err != nil || v.kind != refTyped {
			return nil, false
		}
		keys = append(keys, v.typ+"/"+v.id)
	}
	return keys, len(keys) > 0
}

// Comparators returns the prefixes of the clause's values (eq when none is
// written) for number, date and quantity parameters, nil otherwise.
func (cl Clause) Comparators() []string {
	switch cl.Param.Type {
	case TypeNumber, TypeDate, TypeQuantity:
	default:
		return nil
	}
	if cl.Modifier == "missing" {
		return nil
	}
	var out []string
	for _, v := range cl.Values {
		p, _, err := splitPrefix(v, string(cl.Param.Type))
		if err != nil {
			continue
		}
		name := p.String()
		found := false
		for _, o := range out {
			found = found || o == name
		}
		if !found {
			out = append(out, name)
		}
	}
	return out
}

func parseClause(resourceType, key, val string) (clause, error) {
	key = strings.TrimPrefix(key, resourceType+".")
	code, modifier, hasMod := strings.Cut(key, ":")
	if hasMod && modifier == "" {
		return clause{}, fmt.Errorf("empty modifier in %q", key)
	}
	switch {
	case code == "":
		return clause{}, fmt.Errorf("search term %q has no parameter name", key+"="+val)
	case code == "_has":
		return clause{}, fmt.Errorf("reverse chaining (_has) is not supported")
	case resultParams[code]:
		return clause{}, fmt.Errorf("result parameter %s is not allowed in criteria", code)
	case strings.Contains(code, "."):
		return clause{}, fmt.Errorf("chained parameter %q is not supported", key)
	case strings.Contains(modifier, "."):
		return clause{}, fmt.Errorf("chained parameter %q is not supported", key)
	}
	p := lookup(resourceType, code)
	if p == nil {
		return clause{}, fmt.Errorf("unknown search parameter %q for %s", code, resourceType)
	}
	if !p.Supported() {
		return clause{}, fmt.Errorf("search parameter %q for %s is not supported: %s", code, resourceType, p.Unsupported)
	}
	cl := clause{Clause: Clause{Param: *p, Code: code, Modifier: modifier}, p: p}
	if err := cl.setModifier(); err != nil {
		return clause{}, err
	}
	if val == "" {
		return clause{}, fmt.Errorf("search parameter %s has no value", key)
	}
	cl.Values = splitEscaped(val, ',', true)
	if cl.mod == modMissing {
		if len(cl.Values) != 1 || (cl.Values[0] != "true" && cl.Values[0] != "false") {
			return clause{}, fmt.Errorf("%s:missing takes true or false, not %q", code, val)
		}
		cl.missing = cl.Values[0] == "true"
		return cl, nil
	}
	for _, v := range cl.Values {
		if v == "" {
			return clause{}, fmt.Errorf("search parameter %s has an empty value in %q", key, val)
		}
		if err := cl.addValue(v); err != nil {
			return clause{}, fmt.Errorf("%s: %w", key, err)
		}
	}
	return cl, nil
}

// setModifier validates the modifier against the parameter type.
func (cl *clause) setModifier() error {
	m, p := cl.Modifier, cl.p
	unsupported := func() error { return fmt.Errorf("modifier :%s is not supported for %s", m, cl.Code) }
	switch {
	case m == "":
		cl.mod = modNone
	case p.Type == TypeComposite:
		return unsupported()
	case m == "missing":
		cl.mod = modMissing
	case p.Type == TypeToken && m == "not":
		cl.mod = modNot
	case p.Type == TypeToken && m == "text":
		if !p.hasKind(kindCodeableConcept, kindCoding) {
			return unsupported()
		}
		cl.mod = modText
	case p.Type == TypeToken && m == "of-type":
		if !p.hasKind(kindIdentifier) {
			return unsupported()
		}
		cl.mod = modOfType
	case p.Type == TypeString && m == "exact":
		cl.mod = modExact
	case p.Type == TypeString && m == "contains":
		cl.mod = modContains
	case p.Type == TypeURI && m == "below":
		cl.mod = modBelow
	case p.Type == TypeURI && m == "above":
		cl.mod = modAbove
	case p.Type == TypeReference && m == "identifier":
		if !p.hasKind(kindReference) {
			return unsupported()
		}
		cl.mod = modIdentifier
	case p.Type == TypeReference && IsResourceType(m):
		if len(p.Targets) > 0 && !contains(p.Targets, m) {
			return fmt.Errorf("modifier :%s is not supported for %s (targets are %s)", m, cl.Code, strings.Join(p.Targets, ", "))
		}
		cl.mod = modType
	default:
		return unsupported()
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (cl *clause) addValue(v string) error {
	p := cl.p
	switch p.Type {
	case TypeToken:
		parts := splitEscaped(v, '|', false)
		if cl.mod == modText {
			cl.strs = append(cl.strs, fold(unescape(v)))
			return nil
		}
		if cl.mod == modOfType {
			if len(parts) != 3 || parts[2] == "" {
				return fmt.Errorf(":of-type takes system|code|value, not %q", v)
			}
			cl.tokens = append(cl.tokens, tokenValue{typeSystem: unescape(parts[0]), typeCode: unescape(parts[1]), code: unescape(parts[2])})
			return nil
		}
		switch len(parts) {
		case 1:
			cl.tokens = append(cl.tokens, tokenValue{code: unescape(parts[0])})
		case 2:
			if parts[0] == "" && parts[1] == "" {
				return fmt.Errorf("token %q has neither system nor code", v)
			}
			cl.tokens = append(cl.tokens, tokenValue{system: unescape(parts[0]), code: unescape(parts[1]), hasBar: true})
		default:
			return fmt.Errorf("token %q has more than one unescaped '|'", v)
		}
	case TypeString:
		s := unescape(v)
		if cl.mod != modExact {
			s = fold(s)
		}
		cl.strs = append(cl.strs, s)
	case TypeURI:
		cl.strs = append(cl.strs, unescape(v))
	case TypeDate:
		pf, rest, err := splitPrefix(v, "date")
		if err != nil {
			return err
		}
		if pf == prefixAp {
			return fmt.Errorf("prefix ap is not supported for date %s", cl.Code)
		}
		iv, ok := parseDate(rest)
		if !ok {
			return notADate(rest)
		}
		cl.dates = append(cl.dates, dateValue{p: pf, iv: iv})
	case TypeNumber:
		pf, rest, err := splitPrefix(v, "number")
		if err != nil {
			return err
		}
		n, err := parseNumber(pf, rest)
		if err != nil {
			return err
		}
		cl.nums = append(cl.nums, n)
	case TypeQuantity:
		pf, rest, err := splitPrefix(v, "quantity")
		if err != nil {
			return err
		}
		parts := splitEscaped(rest, '|', false)
		if len(parts) != 1 && len(parts) != 3 {
			return fmt.Errorf("quantity %q is not number, number|system|code or number||code", v)
		}
		n, err := parseNumber(pf, parts[0])
		if err != nil {
			return err
		}
		q := qtyValue{n: n}
		if len(parts) == 3 {
			q.system, q.code = unescape(parts[1]), unescape(parts[2])
			if q.system != "" && q.code == "" {
				return fmt.Errorf("quantity %q has a system but no code", v)
			}
		}
		cl.qtys = append(cl.qtys, q)
	case TypeReference:
		r, err := parseRef(p, cl.Modifier, v)
		if err != nil {
			return err
		}
		if cl.mod == modIdentifier {
			parts := splitEscaped(v, '|', false)
			if len(parts) > 2 {
				return fmt.Errorf("identifier %q has more than one unescaped '|'", v)
			}
			t := tokenValue{code: unescape(parts[0])}
			if len(parts) == 2 {
				t = tokenValue{system: unescape(parts[0]), code: unescape(parts[1]), hasBar: true}
			}
			cl.tokens = append(cl.tokens, t)
			return nil
		}
		cl.refs = append(cl.refs, r)
	case TypeComposite:
		parts := splitEscaped(v, '$', false)
		if len(parts) != len(p.Components) {
			return fmt.Errorf("composite value %q needs %d parts separated by '$'", v, len(p.Components))
		}
		subs := make([]clause, len(parts))
		for i, part := range parts {
			c := &p.Components[i]
			sub := clause{Clause: Clause{Param: *c, Code: c.Code}, p: c}
			if part == "" {
				return fmt.Errorf("composite value %q has an empty part", v)
			}
			if err := sub.addValue(part); err != nil {
				return fmt.Errorf("component %s: %w", c.Code, err)
			}
			subs[i] = sub
		}
		cl.composite = append(cl.composite, subs)
	default:
		return fmt.Errorf("%s parameters are not supported", p.Type)
	}
	return nil
}

// parseRef parses a reference search value: Type/id, id, an absolute URL
// ending in Type/id (a trailing /_history/v is dropped), or, for parameters
// on canonical/uri elements and for urn: values, any URL compared verbatim.
func parseRef(p *Param, modifier, v string) (refValue, error) {
	if p.hasKind(kindReference) && modifier == "identifier" {
		return refValue{}, nil
	}
	v = unescape(v)
	r := refValue{raw: v, unversion: v}
	if i := strings.IndexByte(v, '|'); i >= 0 {
		r.unversion = v[:i]
	}
	if strings.HasPrefix(v, "urn:") || !p.hasKind(kindReference) {
		r.kind = refRaw // compared verbatim with the reference or canonical
		return r, nil
	}
	base, typ, id, ok := splitRef(v)
	if !ok {
		if p.hasKind(kindCanonical) && strings.Contains(v, "://") {
			r.kind = refRaw
			return r, nil
		}
		return refValue{}, fmt.Errorf("%q is not a reference (use Type/id, id or an absolute URL ending in Type/id)", v)
	}
	if typ == "" {
		typ = modifier
		if typ == "" && len(p.Targets) == 1 {
			typ = p.Targets[0]
		}
		if typ == "" {
			return refValue{kind: refID, id: id, raw: v, unversion: v}, nil
		}
	} else if modifier != "" && modifier != "identifier" && modifier != typ {
		return refValue{}, fmt.Errorf("reference %q contradicts the modifier :%s", v, modifier)
	}
	if !IsResourceType(typ) {
		return refValue{}, fmt.Errorf("%q does not name a resource type", v)
	}
	if len(p.Targets) > 0 && !contains(p.Targets, typ) {
		return refValue{}, fmt.Errorf("%s is not a target type of %s (%s)", typ, p.Code, strings.Join(p.Targets, ", "))
	}
	r.kind, r.base, r.typ, r.id = refTyped, base, typ, id
	return r, nil
}

// splitRef splits a literal reference into base URL, type and id, dropping a
// /_history/version suffix. A bare id has no type. It does not allocate.
func splitRef(s string) (base, typ, id string, ok bool) {
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	j := strings.LastIndexByte(s, '/')
	if j < 0 {
		return "", "", s, validID(s)
	}
	id = s[j+1:]
	rest := s[:j]
	k := strings.LastIndexByte(rest, '/')
	typ, base = rest[k+1:], ""
	if k >= 0 {
		base = rest[:k]
		if !strings.Contains(base, "://") {
			return "", "", "", false
		}
	}
	if !validID(id) || typ == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return "", "", "", false
	}
	return base, typ, id, true
}

// validID checks the FHIR id syntax [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// splitEscaped splits s on sep unless it is escaped with a backslash. With
// unescapeSep, "\sep" becomes sep in the parts; other escapes are kept.
func splitEscaped(s string, sep byte, unescapeSep bool) []string {
	var parts []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			if s[i+1] == sep && unescapeSep {
				b.WriteByte(sep)
			} else {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
			continue
		}
		if c == sep {
			parts = append(parts, b.String())
			b.Reset()
			continue
		}
		b.WriteByte(c)
	}
	return append(parts, b.String())
}

// unescape removes FHIR's backslash escapes (\, \| \$ \\).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`,|$\`, s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var errNilResource = errors.New("search: nil resource")
