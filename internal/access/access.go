// Package access turns a caller's SMART grants on one resource type into the
// one rule every path applies: which versions the caller may see or change.
// A non-granular grant covers the type (a patient/ one only that patient's
// compartment); a granular v2 scope (patient/Observation.rs?category=…)
// covers what its query matches, compiled once as a search clause. Several
// grants are ORed. Single versions are judged by the search matcher
// ([Access.Permits]); pages by the store's SQL ([Access.Bound]), which
// keeps the rule's index terms and, where the index alone cannot decide,
// hands the candidates to the same matcher.
package access

import (
	"net/url"
	"strings"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
)

// Access is what one caller may do with one resource type in one
// interaction. The zero Access grants nothing.
type Access struct {
	base    string
	whole   bool   // a non-granular grant covers the type …
	patient string // … within this patient's compartment ("" = all of it)
	grants  []grant
}

// grant is one granular scope, compiled.
type grant struct {
	patient  string // a patient/ grant's compartment
	criteria *search.Criteria
	index    [][]string
	decides  bool // the index terms decide the criteria exactly
}

// For compiles p's grants of interaction i on typ. base is Herald's public
// FHIR base (references under it are local). A granular query the search
// table cannot evaluate grants nothing (fail closed).
func For(p *auth.Principal, i auth.Interaction, typ, base string) Access {
	a := Access{base: base}
	if p == nil {
		return a
	}
	if p.Can(i, typ) {
		a.whole = true
		if p.PatientScoped(i, typ) {
			a.patient = p.Patient
		}
		if a.patient == "" {
			return a // the whole type: no granular grant adds anything
		}
	}
	for _, q := range p.Granular(i, typ) {
		c, err := search.ParseCriteria(typ, encode(q.Params))
		if err != nil {
			continue
		}
		a.grants = append(a.grants, grant{patient: q.Patient, criteria: c, index: c.IndexTerms(base), decides: c.IndexDecides(base)})
	}
	return a
}

// encode re-escapes a granular query's pairs as the search parser reads them.
func encode(ps []auth.Param) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = url.PathEscape(p.Name) + "=" + url.PathEscape(p.Value)
	}
	return strings.Join(parts, "&")
}

// Any reports whether the caller may do the interaction on some resources
// of the type.
func (a Access) Any() bool { return a.whole || len(a.grants) > 0 }

// Granular reports whether some of what the caller may see is decided by a
// granular scope's query.
func (a Access) Granular() bool { return len(a.grants) > 0 }

// Patient is the compartment that bounds the non-granular grant ("" when it
// is unbounded or there is none).
func (a Access) Patient() string { return a.patient }

// Unbounded reports whether the caller may see every resource of the type.
func (a Access) Unbounded() bool { return a.whole && a.patient == "" }

// Permits reports whether the caller may read v: under the non-granular
// grant, v lies in its compartment; under a granular one, v also matches
// its query. Delete markers match no query.
func (a Access) Permits(v store.Version) bool {
	return a.judge(v, auth.InCompartment)
}

// Owns reports whether the caller may write v: as Permits, but a bounding
// patient must be the only one whose compartment holds v, so a
// patient-scoped writer cannot place a resource in another's record.
func (a Access) Owns(v store.Version) bool {
	return a.judge(v, ownedBy)
}

func (a Access) judge(v store.Version, within func([]string, string) bool) bool {
	if a.whole && within(v.Patients, a.patient) {
		return true
	}
	if len(a.grants) == 0 || v.Deleted {
		return false
	}
	r, err := search.NewStoredResource(v.Body)
	if err != nil {
		return false
	}
	r = r.WithBase(a.base)
	for _, g := range a.grants {
		if !within(v.Patients, g.patient) {
			continue
		}
		if ok, err := g.criteria.Match(r); ok && err == nil {
			return true
		}
	}
	return false
}

// ownedBy: every patient whose compartment holds v is patient ("" owns all).
func ownedBy(patients []string, patient string) bool {
	if patient == "" {
		return true
	}
	if len(patients) == 0 {
		return false
	}
	for _, id := range patients {
		if id != patient {
			return false
		}
	}
	return true
}

// Bound narrows q to what the caller may read: the non-granular
// compartment as q.Patient when no granular grant is involved, otherwise
// one store.Bound per grant (ORed, in SQL); when a grant's index terms do
// not decide its query, q's matcher also applies Permits, so pages stay
// full and totals honest either way. A resource whose index keys are
// unknown satisfies no grant's terms (fail closed until it is re-indexed).
func (a Access) Bound(q *store.SearchQuery) {
	switch {
	case a.Unbounded():
		return
	case len(a.grants) == 0:
		q.Patient = a.patient // callers check Any first
		return
	}
	exact := true
	if a.whole {
		q.Within = append(q.Within, store.Bound{Patient: a.patient})
	}
	for _, g := range a.grants {
		q.Within = append(q.Within, store.Bound{Patient: g.patient, Index: g.index})
		exact = exact && g.decides
	}
	if exact {
		return
	}
	match := q.Match
	q.Match = func(v store.Version) bool {
		return a.Permits(v) && (match == nil || match(v))
	}
}

// All is the Access of a caller that may see every resource of the type
// (types whose own rules isolate callers instead of compartments).
func All() Access { return Access{whole: true} }
