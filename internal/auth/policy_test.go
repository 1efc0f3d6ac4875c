package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMayReceive(t *testing.T) {
	t.Parallel()
	enc := []string{"Encounter"}
	pin := func(v string) []FilterClause {
		return []FilterClause{{ResourceType: "Encounter", Param: "patient", Value: v}}
	}
	cases := []struct {
		name    string
		scopes  string
		patient string
		types   []string
		filters []FilterClause
		ok      bool
	}{
		{"system read", "system/Encounter.rs", "", enc, nil, true},
		{"system wildcard v1", "system/*.read", "", enc, nil, true},
		{"user read", "user/Encounter.r", "", enc, nil, true},
		{"write only", "system/Encounter.cud", "", enc, nil, false},
		{"other type", "system/Observation.rs", "", enc, nil, false},
		{"admin is not read", "herald.admin", "", enc, nil, false},
		{"patient unpinned", "patient/Encounter.rs", "p1", enc, nil, false},
		{"patient pinned", "patient/Encounter.rs", "p1", enc, pin("Patient/p1"), true},
		{"patient pinned by bare id", "patient/Encounter.rs", "p1", enc, pin("p1"), true},
		{"patient pinned to another", "patient/Encounter.rs", "p1", enc, pin("Patient/p2"), false},
		{"patient pinned with modifier", "patient/Encounter.rs", "p1", enc, []FilterClause{{Param: "patient", Modifier: "not", Value: "Patient/p1"}}, false},
		{"patient pin on all types", "patient/*.rs", "p1", []string{"Encounter", "Observation"}, []FilterClause{{Param: "patient", Value: "Patient/p1"}}, true},
		{"patient pin on one type only", "patient/*.rs", "p1", []string{"Encounter", "Observation"}, pin("Patient/p1"), false},
		{"patient scope without claim", "patient/Encounter.rs", "", enc, pin("Patient/p1"), false},
		{"granular matched", "system/Observation.rs?category=laboratory", "", []string{"Observation"},
			[]FilterClause{{ResourceType: "Observation", Param: "category", Value: "laboratory"}}, true},
		{"granular broader filter", "system/Observation.rs?category=laboratory", "", []string{"Observation"},
			[]FilterClause{{ResourceType: "Observation", Param: "category", Value: "laboratory,vital-signs"}}, false},
		{"granular missing filter", "system/Observation.rs?category=laboratory", "", []string{"Observation"}, nil, false},
		{"granular plus narrower", "system/Observation.rs?category=laboratory", "", []string{"Observation"},
			[]FilterClause{{Param: "category", Value: "laboratory"}, {Param: "code", Value: "1234-5"}}, true},
		{"patient granular needs pin too", "patient/Observation.rs?category=laboratory", "p1", []string{"Observation"},
			[]FilterClause{{Param: "category", Value: "laboratory"}}, false},
		{"patient granular pinned", "patient/Observation.rs?category=laboratory", "p1", []string{"Observation"},
			[]FilterClause{{Param: "category", Value: "laboratory"}, {Param: "patient", Value: "Patient/p1"}}, true},
	}
	for _, c := range cases {
		err := MayReceive(ParseScopes(c.scopes), c.patient, Notice{Types: c.types, Filters: c.filters})
		if c.ok {
			require.NoError(t, err, c.name)
		} else {
			require.Error(t, err, c.name)
		}
	}
}

func TestContentWithin(t *testing.T) {
	t.Parallel()
	require.True(t, ContentWithin("empty", "id-only"))
	require.True(t, ContentWithin("id-only", "id-only"))
	require.False(t, ContentWithin("full-resource", "id-only"))
	require.True(t, ContentWithin("full-resource", "full-resource"))
	require.False(t, ContentWithin("everything", "full-resource"))
	require.False(t, ContentWithin("empty", ""))
}
