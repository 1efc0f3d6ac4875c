package auth

import (
	"slices"
	"time"
)

// Principal is the verified identity and grants of one token. Verify may
// return the same *Principal for repeated tokens, so treat it as read-only.
type Principal struct {
	// ClientID is the client_id claim, else sub.
	ClientID string
	// Scopes are the scopes Herald understood; RawScopes all of them.
	Scopes    ScopeSet
	RawScopes []string
	// Patient is the patient claim (SMART launch context), if any.
	Patient string
	// User is who a user/ token acts for: the fhirUser claim, else "sub:"
	// and the sub claim (two namespaces that never meet).
	User      string
	ExpiresAt time.Time
	// Admin is set when the token carries [AdminScope].
	Admin bool
}

// Context is the launch context p acts in, which with ClientID owns what
// it creates: "system" when it has a system/ scope (it acts for the whole
// client), else "user/<User>" with a user/ scope, else "patient/<Patient>".
func (p *Principal) Context() string {
	var user bool
	for _, s := range p.Scopes {
		switch {
		case s.Admin:
		case s.Context == ContextSystem:
			return "system"
		case s.Context == ContextUser:
			user = true
		}
	}
	if user {
		return "user/" + p.User
	}
	return "patient/" + p.Patient
}

// decision applies the principal-level policy to the raw scope facts:
// patient/ scopes without a patient claim grant nothing (fail closed).
func (p *Principal) decision(i Interaction, resourceType string) Decision {
	if p == nil {
		return Decision{}
	}
	d := p.Scopes.Allows(i, resourceType)
	if p.Patient == "" {
		d.Patient = false
		d.Granular = slices.DeleteFunc(d.Granular, func(g Grant) bool { return g.Context == ContextPatient })
	}
	return d
}

// Can reports whether a non-granular scope lets p perform i on resourceType.
// When [Principal.PatientScoped] is also true, the grant covers only the
// compartment of p.Patient.
func (p *Principal) Can(i Interaction, resourceType string) bool {
	return p.decision(i, resourceType).Unrestricted()
}

// InCompartment reports whether a version in the compartments of patients
// is in the compartment of patient; "" (no patient bounds the caller) is
// everywhere. It is the one compartment test of reads.
func InCompartment(patients []string, patient string) bool {
	return patient == "" || slices.Contains(patients, patient)
}

// PatientScoped reports whether every non-granular grant of i on
// resourceType is a patient/ one, so the caller must confine the request to
// the compartment of p.Patient. A system/ or user/ grant lifts that (user/
// is system-wide here: Herald has no user-level ACLs). False when
// [Principal.Can] is false.
func (p *Principal) PatientScoped(i Interaction, resourceType string) bool {
	d := p.decision(i, resourceType)
	return d.Patient && !d.System && !d.User
}

// Granular returns the queries of the granular scopes that cover i on
// resourceType. Each grants only what it matches; queries from patient/
// scopes carry [Query.Patient] so they are also confined to that
// compartment. A caller that cannot evaluate a query must treat it as
// granting nothing.
func (p *Principal) Granular(i Interaction, resourceType string) []Query {
	d := p.decision(i, resourceType)
	if len(d.Granular) == 0 {
		return nil
	}
	qs := make([]Query, 0, len(d.Granular))
	for _, g := range d.Granular {
		q := g.Query
		if g.Context == ContextPatient {
			q.Patient = p.Patient
		}
		qs = append(qs, q)
	}
	return qs
}
