package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrincipalDecisions(t *testing.T) {
	t.Parallel()
	lab := Query{Raw: "category=laboratory", Params: []Param{{"category", "laboratory"}}}
	tests := []struct {
		name         string
		scopes       string
		patient      string
		i            Interaction
		typ          string
		can, pScoped bool
		granular     []Query
	}{
		{name: "no scopes", i: Read, typ: "Patient"},
		{name: "system", scopes: "system/Encounter.rs", i: Read, typ: "Encounter", can: true},
		{name: "user is system-wide", scopes: "user/Encounter.rs", i: Search, typ: "Encounter", can: true},
		{name: "wrong letter", scopes: "system/Encounter.rs", i: Update, typ: "Encounter"},
		{name: "patient with claim", scopes: "patient/Encounter.rs", patient: "p1", i: Read, typ: "Encounter", can: true, pScoped: true},
		{name: "patient without claim grants nothing", scopes: "patient/Encounter.rs", i: Read, typ: "Encounter"},
		{name: "patient and system is not restricted", scopes: "patient/*.rs system/Encounter.r", patient: "p1", i: Read, typ: "Encounter", can: true},
		{name: "patient and user is not restricted", scopes: "patient/*.* user/*.read", patient: "p1", i: Search, typ: "Encounter", can: true},
		{name: "system on other type leaves patient restriction", scopes: "patient/*.rs system/Observation.r", patient: "p1", i: Read, typ: "Encounter", can: true, pScoped: true},
		{name: "admin is not resource access", scopes: "herald.admin", i: Read, typ: "Encounter"},
		{
			name: "granular only", scopes: "system/Observation.rs?category=laboratory", i: Read, typ: "Observation",
			granular: []Query{lab},
		},
		{
			name: "granular beside unrestricted", scopes: "system/Observation.rs?category=laboratory user/Observation.s", i: Search, typ: "Observation",
			can: true, granular: []Query{lab},
		},
		{
			name: "patient granular carries the patient", scopes: "patient/Observation.rs?category=laboratory", patient: "p1", i: Read, typ: "Observation",
			granular: []Query{{Raw: lab.Raw, Params: lab.Params, Patient: "p1"}},
		},
		{name: "patient granular without claim", scopes: "patient/Observation.rs?category=laboratory", i: Read, typ: "Observation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Principal{ClientID: "c1", Scopes: ParseScopes(tt.scopes), Patient: tt.patient}
			require.Equal(t, tt.can, p.Can(tt.i, tt.typ), "Can")
			require.Equal(t, tt.pScoped, p.PatientScoped(tt.i, tt.typ), "PatientScoped")
			require.Equal(t, tt.granular, p.Granular(tt.i, tt.typ), "Granular")
		})
	}
}

func TestNilPrincipalGrantsNothing(t *testing.T) {
	t.Parallel()
	var p *Principal
	require.False(t, p.Can(Read, "Patient"))
	require.False(t, p.PatientScoped(Read, "Patient"))
	require.Nil(t, p.Granular(Read, "Patient"))
}
