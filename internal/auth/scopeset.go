package auth

import (
	"slices"
	"strings"
)

// ScopeSet is the parsed, de-duplicated scopes of a token or a ceiling.
type ScopeSet []Scope

// ParseScopes parses space-separated scope lists: ParseScopes("a b"),
// ParseScopes("a", "b") and ParseScopes(list...) are the same. Scopes that do
// not parse are left out: SMART servers ignore scopes they do not
// understand, and leaving them out can only take access away.
func ParseScopes(scopes ...string) ScopeSet {
	var set ScopeSet
	for _, list := range scopes {
		for _, s := range strings.Fields(list) {
			sc, reason := parseScope(s)
			if reason != "" {
				continue
			}
			set = set.add(sc)
		}
	}
	return set
}

// add appends sc unless an equal scope is already present.
func (s ScopeSet) add(sc Scope) ScopeSet {
	if slices.ContainsFunc(s, sc.Equal) {
		return s
	}
	return append(s, sc)
}

// Admin reports whether [AdminScope] is present.
func (s ScopeSet) Admin() bool {
	return slices.ContainsFunc(s, func(sc Scope) bool { return sc.Admin })
}

// String is the canonical space-separated form.
func (s ScopeSet) String() string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = sc.String()
	}
	return strings.Join(parts, " ")
}

// Grant is one granular scope's contribution to a [Decision].
type Grant struct {
	Context ScopeContext
	Query   Query
}

// Decision says which scopes of a set cover one interaction on one type.
// It reports the raw facts per context; [Principal] applies the policy
// (patient claim present, user/ treated as system-wide).
type Decision struct {
	// System, User and Patient are set when a non-granular scope in that
	// context covers the request.
	System, User, Patient bool
	// Granular lists the covering scopes that carry a query. They grant
	// only what the query matches; a caller that cannot evaluate a query
	// must treat it as granting nothing.
	Granular []Grant
}

// Unrestricted reports whether a non-granular scope covers the request in
// any of the given contexts, or in any context at all when none are given.
func (d Decision) Unrestricted(contexts ...ScopeContext) bool {
	if len(contexts) == 0 {
		return d.System || d.User || d.Patient
	}
	for _, c := range contexts {
		switch {
		case c == ContextSystem && d.System, c == ContextUser && d.User, c == ContextPatient && d.Patient:
			return true
		}
	}
	return false
}

// Allows reports how s covers interaction i on resourceType. [AdminScope]
// covers no resource interaction.
func (s ScopeSet) Allows(i Interaction, resourceType string) Decision {
	var d Decision
	for _, sc := range s {
		if !sc.Covers(i, resourceType) {
			continue
		}
		if sc.Granular() {
			d.Granular = append(d.Granular, Grant{Context: sc.Context, Query: sc.Query})
			continue
		}
		switch sc.Context {
		case ContextSystem:
			d.System = true
		case ContextUser:
			d.User = true
		case ContextPatient:
			d.Patient = true
		}
	}
	return d
}

// Intersect returns what s grants within ceiling (a client's scope_ceiling).
// Each scope of s is met with each ceiling scope; a meet keeps the narrower
// context (patient < user < system), the more specific type, the common
// letters, and the one query if only one side has a query or both have the
// same. Meets that would need to combine two different queries, or that
// share no letter or type, are dropped. So a scope fully inside a ceiling
// scope survives unchanged, and none of the result is broader than either
// side: system/*.rs within a ceiling of system/Encounter.r yields
// system/Encounter.r rather than nothing.
func (s ScopeSet) Intersect(ceiling ScopeSet) ScopeSet {
	var out ScopeSet
	for _, a := range s {
		for _, c := range ceiling {
			if m, ok := meet(a, c); ok {
				out = out.add(m)
			}
		}
	}
	return out
}

func meet(a, b Scope) (Scope, bool) {
	if a.Admin || b.Admin {
		return Scope{Admin: true}, a.Admin && b.Admin
	}
	m := Scope{Context: a.Context, ResourceType: a.ResourceType, Query: a.Query}
	if b.Context.rank() < a.Context.rank() {
		m.Context = b.Context
	}
	switch {
	case a.ResourceType == b.ResourceType, b.ResourceType == "*":
	case a.ResourceType == "*":
		m.ResourceType = b.ResourceType
	default:
		return Scope{}, false
	}
	if m.Interactions = a.Interactions & b.Interactions; m.Interactions == 0 {
		return Scope{}, false
	}
	switch {
	case b.Query.IsZero(), a.Query.Equal(b.Query):
	case a.Query.IsZero():
		m.Query = b.Query
	default:
		return Scope{}, false
	}
	return m, true
}
