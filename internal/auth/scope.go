package auth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// AdminScope is Herald's own non-resource scope for the admin API. It grants
// no FHIR interactions.
const AdminScope = "herald.admin"

// ErrInvalidScope is wrapped by every [ParseScope] error.
var ErrInvalidScope = errors.New("invalid scope")

// Interaction is one SMART v2 permission letter.
type Interaction byte

// The SMART v2 interactions, in the order their letters must appear.
const (
	Create Interaction = 'c'
	Read   Interaction = 'r'
	Update Interaction = 'u'
	Delete Interaction = 'd'
	Search Interaction = 's'
)

// letterOrder is the only order SMART v2 allows letters in.
const letterOrder = "cruds"

// String names the interaction for messages ("read", "create", ...).
func (i Interaction) String() string {
	switch i {
	case Create:
		return "create"
	case Read:
		return "read"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Search:
		return "search"
	}
	return fmt.Sprintf("Interaction(%q)", byte(i))
}

// bit is the Interactions bit for i, or 0 for a byte that is no interaction.
func (i Interaction) bit() Interactions {
	if n := strings.IndexByte(letterOrder, byte(i)); n >= 0 {
		return 1 << n
	}
	return 0
}

// Interactions is a set of [Interaction]s.
type Interactions uint8

// AllInteractions is "cruds" (v1 ".*").
const AllInteractions Interactions = 1<<len(letterOrder) - 1

// Has reports whether i is in the set.
func (s Interactions) Has(i Interaction) bool {
	b := i.bit()
	return b != 0 && s&b != 0
}

// String is the set's SMART v2 letters in canonical order ("rs").
func (s Interactions) String() string {
	var b strings.Builder
	for n := range len(letterOrder) {
		if s&(1<<n) != 0 {
			b.WriteByte(letterOrder[n])
		}
	}
	return b.String()
}

// parseLetters accepts a non-empty subsequence of "cruds" with no repeats.
func parseLetters(s string) (Interactions, bool) {
	if s == "" {
		return 0, false
	}
	var set Interactions
	next := 0 // letters must strictly advance through letterOrder
	for i := range len(s) {
		n := strings.IndexByte(letterOrder[next:], s[i])
		if n < 0 {
			return 0, false
		}
		next += n
		set |= 1 << next
		next++
	}
	return set, true
}

// ScopeContext is the SMART scope prefix: whose data the grant is about.
type ScopeContext string

// The SMART contexts. Herald has no user-level ACLs, so [ContextUser] grants
// are as wide as [ContextSystem] ones for access decisions; user/ tokens are
// bounded instead by lease rules elsewhere (a Subscription ends no later than
// the token's exp).
const (
	ContextSystem  ScopeContext = "system"
	ContextUser    ScopeContext = "user"
	ContextPatient ScopeContext = "patient"
)

// rank orders contexts from narrowest to widest, for intersections.
func (c ScopeContext) rank() int {
	switch c {
	case ContextPatient:
		return 1
	case ContextUser:
		return 2
	case ContextSystem:
		return 3
	}
	return 0
}

// Param is one name=value pair of a granular scope's query.
type Param struct {
	Name, Value string
}

// Query is the granular restriction of a SMART v2 scope (the part after
// '?'). The zero Query restricts nothing.
type Query struct {
	// Raw is the text after '?', exactly as written in the scope.
	Raw string
	// Params are Raw's pairs, unescaped, in written order. Several pairs
	// all apply (AND), as in a FHIR search.
	Params []Param
	// Patient, when set, additionally confines the grant to that patient's
	// compartment. Parsed scopes never set it; [Principal.Granular] does
	// for patient/ grants.
	Patient string
}

// IsZero reports whether q restricts nothing.
func (q Query) IsZero() bool { return len(q.Params) == 0 && q.Patient == "" }

// Equal reports whether q and o restrict the same way; the order of Params
// does not matter, since they all apply.
func (q Query) Equal(o Query) bool {
	if q.Patient != o.Patient || len(q.Params) != len(o.Params) {
		return false
	}
	return slices.Equal(sortedParams(q.Params), sortedParams(o.Params))
}

func sortedParams(ps []Param) []Param {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Param) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return ps
}

// parseQuery follows net/url query syntax but keeps pair order, and rejects
// anything that would make the restriction ambiguous: no pairs at all, an
// empty name or value, ';' separators, bad escapes.
func parseQuery(raw string) (Query, error) {
	q := Query{Raw: raw}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			return Query{}, errors.New("';' in granular query")
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return Query{}, errors.New("bad escape in granular query")
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return Query{}, errors.New("bad escape in granular query")
		}
		if name == "" || value == "" {
			return Query{}, errors.New("empty name or value in granular query")
		}
		q.Params = append(q.Params, Param{Name: name, Value: value})
	}
	if len(q.Params) == 0 {
		return Query{}, errors.New("empty granular query")
	}
	return q, nil
}

// Scope is one parsed SMART scope, or Herald's admin scope.
type Scope struct {
	// Admin is set for [AdminScope]; all other fields are then zero.
	Admin bool
	// Context is system, user or patient.
	Context ScopeContext
	// ResourceType is a FHIR type name or "*" for every type.
	ResourceType string
	// Interactions is never empty. SMART v1 read is "rs", write "cud", * "cruds".
	Interactions Interactions
	// Query is zero unless the scope is granular.
	Query Query
}

// Granular reports whether the scope carries a query restriction.
func (s Scope) Granular() bool { return !s.Query.IsZero() }

// Covers reports whether s names interaction i on resourceType, ignoring its
// context and query.
func (s Scope) Covers(i Interaction, resourceType string) bool {
	if s.Admin || resourceType == "" || !s.Interactions.Has(i) {
		return false
	}
	return s.ResourceType == "*" || s.ResourceType == resourceType
}

// Equal reports whether s and o grant the same.
func (s Scope) Equal(o Scope) bool {
	return s.Admin == o.Admin && s.Context == o.Context && s.ResourceType == o.ResourceType &&
		s.Interactions == o.Interactions && s.Query.Equal(o.Query)
}

// String is the canonical form, always with SMART v2 letters
// ("patient/Observation.rs?category=laboratory").
func (s Scope) String() string {
	if s.Admin {
		return AdminScope
	}
	out := string(s.Context) + "/" + s.ResourceType + "." + s.Interactions.String()
	if s.Query.Raw != "" {
		out += "?" + s.Query.Raw
	}
	return out
}

// ParseScope parses one SMART v1 or v2 resource scope, or [AdminScope].
// Other scopes (openid, launch/patient, ...) are errors wrapping
// [ErrInvalidScope]; [ParseScopes] skips them.
func ParseScope(s string) (Scope, error) {
	sc, reason := parseScope(s)
	if reason != "" {
		return Scope{}, fmt.Errorf("%w %q: %s", ErrInvalidScope, s, reason)
	}
	return sc, nil
}

func parseScope(s string) (Scope, string) {
	if s == "" {
		return Scope{}, "empty"
	}
	if !isScopeToken(s) {
		return Scope{}, "character not allowed in a scope"
	}
	if s == AdminScope {
		return Scope{Admin: true}, ""
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, "not a resource scope"
	}
	sc := Scope{Context: ScopeContext(ctx)}
	if sc.Context.rank() == 0 {
		return Scope{}, "context must be system, user or patient"
	}
	rest, rawQuery, granular := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, "missing permissions"
	}
	if !isResourceType(typ) {
		return Scope{}, "resource type must be * or a type name"
	}
	sc.ResourceType = typ
	v1 := true
	switch perm {
	case "read":
		sc.Interactions = Read.bit() | Search.bit()
	case "write":
		sc.Interactions = Create.bit() | Update.bit() | Delete.bit()
	case "*":
		sc.Interactions = AllInteractions
	default:
		v1 = false
		if sc.Interactions, ok = parseLetters(perm); !ok {
			return Scope{}, `permissions must be read, write, * or letters of "cruds" in order`
		}
	}
	if granular {
		// SMART v1 has no granular scopes; refusing them drops the grant,
		// which fails closed.
		if v1 {
			return Scope{}, "SMART v1 permissions take no query"
		}
		q, err := parseQuery(rawQuery)
		if err != nil {
			return Scope{}, err.Error()
		}
		sc.Query = q
	}
	return sc, ""
}

// isScopeToken enforces RFC 6749's scope-token characters, so no scope can
// smuggle spaces, quotes or non-ASCII into logs or canonical forms.
func isScopeToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isResourceType accepts "*" or an ASCII name with a leading capital, the
// shape of every FHIR resource type. Unknown names are allowed: they simply
// never match a real type.
func isResourceType(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
