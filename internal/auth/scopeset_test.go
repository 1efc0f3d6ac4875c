package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func mustScope(t *testing.T, s string) Scope {
	t.Helper()
	sc, err := ParseScope(s)
	require.NoError(t, err)
	return sc
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want string // canonical String() of the set
	}{
		{name: "none", in: nil, want: ""},
		{name: "space separated", in: []string{"  system/Encounter.read\tuser/*.s  "}, want: "system/Encounter.rs user/*.s"},
		{name: "several lists", in: []string{"system/Encounter.rs", "herald.admin openid"}, want: "system/Encounter.rs herald.admin"},
		{name: "unknown ignored", in: []string{"openid fhirUser launch/patient system/Patient.sr patient/Patient.r"}, want: "patient/Patient.r"},
		{name: "v1 and v2 duplicates merge", in: []string{"system/Encounter.read system/Encounter.rs"}, want: "system/Encounter.rs"},
		{name: "granular kept apart", in: []string{"system/Observation.rs system/Observation.rs?category=laboratory"}, want: "system/Observation.rs system/Observation.rs?category=laboratory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, ParseScopes(tt.in...).String())
		})
	}
	require.True(t, ParseScopes("openid herald.admin").Admin())
	require.False(t, ParseScopes("system/*.*").Admin())
}

func TestScopeSetAllows(t *testing.T) {
	t.Parallel()
	lab := Query{Raw: "category=laboratory", Params: []Param{{"category", "laboratory"}}}
	tests := []struct {
		name   string
		scopes string
		i      Interaction
		typ    string
		want   Decision
	}{
		{name: "empty", scopes: "", i: Read, typ: "Patient", want: Decision{}},
		{name: "system exact", scopes: "system/Patient.rs", i: Read, typ: "Patient", want: Decision{System: true}},
		{name: "letter missing", scopes: "system/Patient.rs", i: Create, typ: "Patient", want: Decision{}},
		{name: "other type", scopes: "system/Patient.cruds", i: Read, typ: "Encounter", want: Decision{}},
		{name: "wildcard type", scopes: "user/*.read", i: Search, typ: "Encounter", want: Decision{User: true}},
		{name: "v1 write is cud", scopes: "patient/*.write", i: Delete, typ: "Encounter", want: Decision{Patient: true}},
		{name: "v1 write has no read", scopes: "patient/*.write", i: Read, typ: "Encounter", want: Decision{}},
		{name: "wildcard query type", scopes: "system/Patient.r", i: Read, typ: "*", want: Decision{}},
		{name: "empty type", scopes: "system/*.r", i: Read, typ: "", want: Decision{}},
		{name: "admin grants no resource", scopes: "herald.admin", i: Read, typ: "Patient", want: Decision{}},
		{name: "all contexts", scopes: "system/Patient.r user/*.r patient/Patient.*", i: Read, typ: "Patient", want: Decision{System: true, User: true, Patient: true}},
		{
			name: "granular", scopes: "patient/Observation.rs?category=laboratory system/Observation.s", i: Search, typ: "Observation",
			want: Decision{System: true, Granular: []Grant{{Context: ContextPatient, Query: lab}}},
		},
		{name: "granular other letter", scopes: "system/Observation.s?category=laboratory", i: Read, typ: "Observation", want: Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, ParseScopes(tt.scopes).Allows(tt.i, tt.typ))
		})
	}
}

func TestDecisionUnrestricted(t *testing.T) {
	t.Parallel()
	d := Decision{User: true, Granular: []Grant{{Context: ContextSystem}}}
	require.True(t, d.Unrestricted())
	require.True(t, d.Unrestricted(ContextUser))
	require.True(t, d.Unrestricted(ContextSystem, ContextUser))
	require.False(t, d.Unrestricted(ContextSystem))
	require.False(t, d.Unrestricted(ContextPatient))
	require.False(t, Decision{Granular: []Grant{{Context: ContextSystem}}}.Unrestricted())
}

func TestScopeSetIntersect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		scopes, ceil string
		want         string
	}{
		{name: "empty ceiling", scopes: "system/*.cruds", ceil: "", want: ""},
		{name: "inside survives", scopes: "system/Encounter.rs", ceil: "system/Encounter.cruds", want: "system/Encounter.rs"},
		{name: "wildcard ceiling", scopes: "system/Encounter.rs", ceil: "system/*.rs", want: "system/Encounter.rs"},
		{name: "letters narrowed", scopes: "system/Encounter.cruds", ceil: "system/Encounter.rs", want: "system/Encounter.rs"},
		{name: "no common letter", scopes: "system/Encounter.cud", ceil: "system/Encounter.rs", want: ""},
		{name: "type narrowed", scopes: "system/*.rs", ceil: "system/Encounter.r system/Observation.rs", want: "system/Encounter.r system/Observation.rs"},
		{name: "different types", scopes: "system/Patient.rs", ceil: "system/Encounter.rs", want: ""},
		{name: "system ceiling keeps user", scopes: "user/Encounter.rs", ceil: "system/Encounter.rs", want: "user/Encounter.rs"},
		{name: "system ceiling keeps patient", scopes: "patient/Encounter.rs", ceil: "system/*.*", want: "patient/Encounter.rs"},
		{name: "patient ceiling narrows system", scopes: "system/Encounter.rs", ceil: "patient/Encounter.rs", want: "patient/Encounter.rs"},
		{name: "user ceiling narrows system", scopes: "system/Encounter.rs", ceil: "user/Encounter.rs", want: "user/Encounter.rs"},
		{name: "patient ceiling narrows user", scopes: "user/Encounter.rs", ceil: "patient/*.rs", want: "patient/Encounter.rs"},
		{name: "same query survives", scopes: "system/Observation.rs?category=lab", ceil: "system/Observation.rs?category=lab", want: "system/Observation.rs?category=lab"},
		{name: "query inside plain ceiling", scopes: "system/Observation.rs?category=lab", ceil: "system/*.rs", want: "system/Observation.rs?category=lab"},
		{name: "ceiling query narrows", scopes: "system/Observation.rs", ceil: "system/Observation.r?category=lab", want: "system/Observation.r?category=lab"},
		{name: "different queries dropped", scopes: "system/Observation.rs?category=lab", ceil: "system/Observation.rs?category=vital", want: ""},
		{name: "query param order irrelevant", scopes: "system/Observation.rs?a=1&b=2", ceil: "system/Observation.rs?b=2&a=1", want: "system/Observation.rs?a=1&b=2"},
		{name: "admin needs admin", scopes: "herald.admin system/*.rs", ceil: "system/*.*", want: "system/*.rs"},
		{name: "admin kept", scopes: "herald.admin", ceil: "herald.admin", want: "herald.admin"},
		{name: "admin not granted by ceiling alone", scopes: "system/*.rs", ceil: "herald.admin", want: ""},
		{name: "duplicates merge", scopes: "system/Encounter.rs", ceil: "system/*.rs system/Encounter.cruds", want: "system/Encounter.rs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseScopes(tt.scopes).Intersect(ParseScopes(tt.ceil))
			require.Equal(t, tt.want, got.String())
			// Nothing in the result may reach beyond either side.
			for _, sc := range got {
				if sc.Admin {
					continue
				}
				for _, i := range []Interaction{Create, Read, Update, Delete, Search} {
					for _, typ := range []string{"Encounter", "Observation", "Patient"} {
						if sc.Covers(i, typ) {
							require.True(t, ParseScopes(tt.scopes).Allows(i, typ).Unrestricted() || len(ParseScopes(tt.scopes).Allows(i, typ).Granular) > 0)
							require.True(t, ParseScopes(tt.ceil).Allows(i, typ).Unrestricted() || len(ParseScopes(tt.ceil).Allows(i, typ).Granular) > 0)
						}
					}
				}
			}
		})
	}
	sc := mustScope(t, "system/Encounter.rs")
	require.True(t, ScopeSet{sc}.Intersect(ScopeSet{sc})[0].Equal(sc))
}
