package auth

import (
	"fmt"

	"github.com/herald-fhir/herald/internal/fhir"
)

// Notice describes what a Subscription would receive: notifications about
// resources of Types, narrowed by Filters (ANDed, as the backport IG says).
type Notice struct {
	Types   []string
	Filters []FilterClause
}

// FilterClause is one param=value of a Subscription filter. ResourceType ""
// applies to every type of the topic.
type FilterClause struct {
	ResourceType, Param, Modifier, Value string
}

// MayReceive decides whether scopes (with the token's patient claim) allow
// receiving what n describes. Each type needs read access that the filters
// make safe:
//   - a system/ or user/ read scope on the type allows it outright;
//   - a patient/ read scope needs a filter patient=Patient/<claim> on the type;
//   - a granular scope (…?category=x) needs filters that are at least as
//     narrow: every param=value of the scope's query, on the type.
//
// The error names the first type that is not allowed. It is used when a
// Subscription is created or updated and again before every send, with the
// scopes recorded at creation intersected with the client's ceiling.
func MayReceive(scopes ScopeSet, patient string, n Notice) error {
	for _, typ := range n.Types {
		if !mayReceiveType(scopes, patient, typ, n.Filters) {
			return fmt.Errorf("no read permission on %s for these filters: %s", typ, needFor(scopes, patient, typ))
		}
	}
	return nil
}

func mayReceiveType(scopes ScopeSet, patient, typ string, filters []FilterClause) bool {
	d := scopes.Allows(Read, typ)
	if d.System || d.User {
		return true
	}
	pinned := patient != "" && pinsPatient(filters, typ, patient)
	if d.Patient && pinned {
		return true
	}
	for _, g := range d.Granular {
		if g.Context == ContextPatient && !pinned {
			continue // a patient/ grant without the patient pinned grants nothing
		}
		if narrowEnough(filters, typ, g.Query) {
			return true
		}
	}
	return false
}

// pinsPatient reports whether a filter restricts typ to the patient.
func pinsPatient(filters []FilterClause, typ, patient string) bool {
	for _, f := range filters {
		if !applies(f, typ) || f.Param != "patient" || f.Modifier != "" {
			continue
		}
		if id, ok := fhir.PatientID(f.Value, ""); ok && id == patient || f.Value == patient {
			return true
		}
	}
	return false
}

// narrowEnough reports whether the filters on typ include every param=value
// of a granular scope's query.
func narrowEnough(filters []FilterClause, typ string, q Query) bool {
	for _, p := range q.Params {
		found := false
		for _, f := range filters {
			if applies(f, typ) && f.Param == p.Name && f.Modifier == "" && f.Value == p.Value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return len(q.Params) > 0
}

func applies(f FilterClause, typ string) bool { return f.ResourceType == "" || f.ResourceType == typ }

// needFor says what would make typ allowed, for the error message.
func needFor(scopes ScopeSet, patient, typ string) string {
	d := scopes.Allows(Read, typ)
	switch {
	case d.Patient && patient != "":
		return fmt.Sprintf("a patient/ token must filter %s by patient=Patient/%s", typ, patient)
	case len(d.Granular) > 0:
		return fmt.Sprintf("the token's %s scope is granular (?%s); add filters at least that narrow", typ, d.Granular[0].Query.Raw)
	default:
		return fmt.Sprintf("the token needs a read scope on %s (e.g. system/%s.rs)", typ, typ)
	}
}

// contentRank orders payload contents by how much they reveal.
var contentRank = map[string]int{fhir.ContentEmpty: 0, fhir.ContentIDOnly: 1, fhir.ContentFullResource: 2}

// ContentWithin reports whether a payload content reveals no more than the ceiling.
func ContentWithin(content, ceiling string) bool {
	c, ok1 := contentRank[content]
	m, ok2 := contentRank[ceiling]
	return ok1 && ok2 && c <= m
}
