package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func letters(s string) Interactions {
	var set Interactions
	for i := range len(s) {
		set |= Interaction(s[i]).bit()
	}
	return set
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Scope
		str  string // canonical String(); in when empty
	}{
		// SMART v1
		{in: "system/Encounter.read", want: Scope{Context: ContextSystem, ResourceType: "Encounter", Interactions: letters("rs")}, str: "system/Encounter.rs"},
		{in: "user/*.write", want: Scope{Context: ContextUser, ResourceType: "*", Interactions: letters("cud")}, str: "user/*.cud"},
		{in: "patient/Observation.*", want: Scope{Context: ContextPatient, ResourceType: "Observation", Interactions: AllInteractions}, str: "patient/Observation.cruds"},
		{in: "system/*.*", want: Scope{Context: ContextSystem, ResourceType: "*", Interactions: AllInteractions}, str: "system/*.cruds"},
		// SMART v2
		{in: "system/Encounter.rs", want: Scope{Context: ContextSystem, ResourceType: "Encounter", Interactions: letters("rs")}},
		{in: "system/Subscription.cu", want: Scope{Context: ContextSystem, ResourceType: "Subscription", Interactions: letters("cu")}},
		{in: "user/*.cruds", want: Scope{Context: ContextUser, ResourceType: "*", Interactions: AllInteractions}},
		{in: "patient/Patient.r", want: Scope{Context: ContextPatient, ResourceType: "Patient", Interactions: letters("r")}},
		{in: "system/Patient.d", want: Scope{Context: ContextSystem, ResourceType: "Patient", Interactions: letters("d")}},
		{in: "system/MedicationRequest.s", want: Scope{Context: ContextSystem, ResourceType: "MedicationRequest", Interactions: letters("s")}},
		// granular
		{
			in: "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			want: Scope{Context: ContextPatient, ResourceType: "Observation", Interactions: letters("rs"), Query: Query{
				Raw:    "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
				Params: []Param{{Name: "category", Value: "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}},
			}},
		},
		{
			in: "system/Observation.rs?category=laboratory&code=http%3A%2F%2Floinc.org%7C1234-5&category=vital-signs",
			want: Scope{Context: ContextSystem, ResourceType: "Observation", Interactions: letters("rs"), Query: Query{
				Raw: "category=laboratory&code=http%3A%2F%2Floinc.org%7C1234-5&category=vital-signs",
				Params: []Param{
					{Name: "category", Value: "laboratory"},
					{Name: "code", Value: "http://loinc.org|1234-5"},
					{Name: "category", Value: "vital-signs"},
				},
			}},
		},
		{
			in: "user/*.s?_tag=a&&x=b+c",
			want: Scope{Context: ContextUser, ResourceType: "*", Interactions: letters("s"), Query: Query{
				Raw:    "_tag=a&&x=b+c",
				Params: []Param{{Name: "_tag", Value: "a"}, {Name: "x", Value: "b c"}},
			}},
		},
		// admin
		{in: "herald.admin", want: Scope{Admin: true}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScope(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			str := tt.str
			if str == "" {
				str = tt.in
			}
			require.Equal(t, str, got.String())
			again, err := ParseScope(got.String())
			require.NoError(t, err)
			require.True(t, got.Equal(again))
		})
	}
}

func TestParseScopeInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"system/.read",
		"system/.rs",
		"foo/Patient.read",
		"System/Patient.read",
		"/Patient.read",
		"system/Patient.rx",
		"system/Patient.sr",
		"system/Patient.rr",
		"system/Patient.RS",
		"system/Patient.",
		"system/Patient",
		"system/Patient.Read",
		"system/Patient.read.write",
		"system/patient.read",
		"system/Pat-ient.read",
		"system/**.read",
		"system/Patient.r s",
		"system/Patient.rs ",
		"system/Pätient.rs",
		`system/Patient.rs?a="b"`,
		"system/Patient.rs?",
		"system/Patient.rs?&",
		"system/Patient.rs?category",
		"system/Patient.rs?category=",
		"system/Patient.rs?=laboratory",
		"system/Patient.rs?a=1;b=2",
		"system/Patient.rs?a=%zz",
		"system/Patient.read?category=laboratory", // v1 has no granular form
		"herald.admin?x=1",
		"herald.Admin",
		"openid",
		"fhirUser",
		"launch/patient",
		"offline_access",
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseScope(in)
			require.ErrorIs(t, err, ErrInvalidScope)
		})
	}
}

// TestParseScopeLetters checks every string of up to five "cruds" letters:
// valid exactly when its letters strictly advance through "cruds".
func TestParseScopeLetters(t *testing.T) {
	t.Parallel()
	var all []string
	var grow func(prefix string)
	grow = func(prefix string) {
		if prefix != "" {
			all = append(all, prefix)
		}
		if len(prefix) == len(letterOrder) {
			return
		}
		for i := range len(letterOrder) {
			grow(prefix + letterOrder[i:i+1])
		}
	}
	grow("")
	require.Len(t, all, 5+25+125+625+3125)
	valid := 0
	for _, perm := range all {
		want := true
		for i := 1; i < len(perm); i++ {
			if strings.IndexByte(letterOrder, perm[i-1]) >= strings.IndexByte(letterOrder, perm[i]) {
				want = false
			}
		}
		sc, err := ParseScope("system/Patient." + perm)
		if !want {
			require.ErrorIs(t, err, ErrInvalidScope, perm)
			continue
		}
		valid++
		require.NoError(t, err, perm)
		require.Equal(t, letters(perm), sc.Interactions, perm)
		require.Equal(t, perm, sc.Interactions.String())
	}
	require.Equal(t, 31, valid) // the non-empty subsets of five letters
}

func TestInteraction(t *testing.T) {
	t.Parallel()
	for i, want := range map[Interaction]string{Create: "create", Read: "read", Update: "update", Delete: "delete", Search: "search"} {
		require.Equal(t, want, i.String())
		require.True(t, AllInteractions.Has(i))
		require.False(t, Interactions(0).Has(i))
	}
	require.False(t, AllInteractions.Has(Interaction('x')))
	require.Equal(t, `Interaction('x')`, Interaction('x').String())
	require.Equal(t, "cruds", AllInteractions.String())
}

func TestQueryEqual(t *testing.T) {
	t.Parallel()
	a := Query{Params: []Param{{"a", "1"}, {"b", "2"}}}
	require.True(t, a.Equal(Query{Params: []Param{{"b", "2"}, {"a", "1"}}}))
	require.False(t, a.Equal(Query{Params: []Param{{"a", "1"}}}))
	require.False(t, a.Equal(Query{Params: []Param{{"a", "1"}, {"b", "3"}}}))
	require.False(t, a.Equal(Query{Params: a.Params, Patient: "p1"}))
	require.True(t, Query{}.IsZero())
	require.False(t, Query{Patient: "p1"}.IsZero())
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"system/Encounter.read",
		"user/*.write",
		"patient/Observation.*",
		"system/Encounter.rs",
		"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"system/Observation.rs?a=1&&b=%20+",
		"herald.admin",
		"system/Patient.sr",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidScope)
			return
		}
		again, err := ParseScope(sc.String())
		require.NoError(t, err, "canonical form %q of %q", sc.String(), s)
		require.True(t, sc.Equal(again), "%q re-parsed from %q differs", sc.String(), s)
		require.Equal(t, sc.String(), again.String())
	})
}

// TestPrincipalContext: the launch context that owns what a token creates.
func TestPrincipalContext(t *testing.T) {
	for scopes, want := range map[string]string{
		"system/Encounter.rs patient/Encounter.rs user/Encounter.rs": "system",
		"user/Encounter.rs patient/Encounter.rs":                     "user/Practitioner/7",
		"patient/Encounter.rs herald.admin":                          "patient/p1",
		"herald.admin":                                               "patient/p1",
	} {
		p := &Principal{ClientID: "c", Scopes: ParseScopes(scopes), Patient: "p1", User: "Practitioner/7"}
		require.Equal(t, want, p.Context(), scopes)
	}
}
