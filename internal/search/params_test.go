package search

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
)

// listedTypes must be covered by the generated table (and by the example
// tests in match_test.go).
var listedTypes = []string{
	"Patient", "Encounter", "Observation", "Condition", "DiagnosticReport", "MedicationRequest",
	"ServiceRequest", "Appointment", "Procedure", "Immunization", "AllergyIntolerance", "DocumentReference",
}

func TestGeneratedTableCoversListedTypes(t *testing.T) {
	t.Parallel()
	var report strings.Builder
	for _, typ := range listedTypes {
		require.True(t, IsResourceType(typ), typ)
		var own, supported, unsupported int
		var names []string
		for _, p := range Params(typ) {
			if p.Base == typ {
				own++
			}
			if p.Supported() {
				supported++
			} else {
				unsupported++
				names = append(names, p.Code)
			}
		}
		require.Positive(t, own, "%s has no parameters of its own", typ)
		require.Greater(t, supported, unsupported, typ)
		fmt.Fprintf(&report, "%-20s %3d supported, %2d unsupported %v\n", typ, supported, unsupported, names)
	}
	t.Log("\n" + report.String())
}

func TestLookup(t *testing.T) {
	t.Parallel()
	// Parameters the Subscriptions backport IG's filters and topic criteria use.
	for _, tc := range []struct {
		typ, code string
		ptype     ParamType
	}{
		{"Encounter", "patient", TypeReference},
		{"Encounter", "status", TypeToken},
		{"Encounter", "subject", TypeReference},
		{"Observation", "category", TypeToken},
		{"Observation", "code", TypeToken},
		{"Observation", "patient", TypeReference},
		{"Observation", "status", TypeToken},
		{"Observation", "value-quantity", TypeQuantity},
		{"Observation", "date", TypeDate},
		{"Patient", "name", TypeString},
		{"Patient", "_id", TypeToken},
		{"Patient", "_lastUpdated", TypeDate},
		{"Encounter", "_lastUpdated", TypeDate},
		{"Bundle", "_id", TypeToken},
		{"DocumentReference", "location", TypeURI},
		{"RiskAssessment", "probability", TypeNumber},
	} {
		p, ok := Lookup(tc.typ, tc.code)
		require.True(t, ok, "%s.%s", tc.typ, tc.code)
		require.True(t, p.Supported(), "%s.%s: %s", tc.typ, tc.code, p.Unsupported)
		require.Equal(t, tc.code, p.Code)
		require.Equal(t, tc.ptype, p.Type, "%s.%s", tc.typ, tc.code)
	}

	p, ok := Lookup("Encounter", "patient")
	require.True(t, ok)
	require.Equal(t, []string{"Group", "Patient"}, p.Targets)
	require.Equal(t, "Encounter", p.Base)
	require.Equal(t, "Encounter.subject.where(resolve() is Patient)", p.Expression)

	p, ok = Lookup("Observation", "code-value-quantity")
	require.True(t, ok)
	require.True(t, p.Supported())
	require.Len(t, p.Components, 2)
	require.Equal(t, "code", p.Components[0].Code)
	require.Equal(t, TypeToken, p.Components[0].Type)
	require.Equal(t, TypeQuantity, p.Components[1].Type)

	p, ok = Lookup("DocumentReference", "relationship")
	require.True(t, ok)
	require.False(t, p.Supported(), "R4 swaps the components' definitions")

	p, ok = Lookup("Observation", "value-quantity")
	require.True(t, ok)
	require.NotEmpty(t, p.Ignored, "valueSampledData is ignored")

	_, ok = Lookup("Encounter", "nope")
	require.False(t, ok)
	_, ok = Lookup("Nope", "_id")
	require.False(t, ok)
	_, ok = Lookup("Resource", "_id")
	require.False(t, ok, "abstract types are not resource types")
	require.Nil(t, Params("Nope"))
}

// Every supported parameter's paths use element kinds the matcher knows, and
// every parameter of the table parses with a plausible value.
func TestEveryParameterParses(t *testing.T) {
	t.Parallel()
	sample := map[ParamType]string{
		TypeToken: "a|b", TypeString: "x", TypeDate: "ge2020-01-01", TypeNumber: "1.5",
		TypeQuantity: "5||mg", TypeURI: "http://x.org/a",
	}
	r, err := NewResource([]byte(`{"resourceType":"Basic"}`))
	require.NoError(t, err)
	n := 0
	for _, typ := range fhir.ResourceTypes() {
		for _, p := range Params(typ) {
			if !p.Supported() {
				continue
			}
			require.NotEmpty(t, p.paths, "%s.%s", typ, p.Code)
			value := func(p Param) string {
				if p.Type == TypeReference {
					if len(p.Targets) > 0 {
						return p.Targets[0] + "/1"
					}
					return "http://x.org/fhir/ValueSet/1"
				}
				return sample[p.Type]
			}
			queries := []string{p.Code + "=" + value(p), p.Code + ":missing=true"}
			if p.Type == TypeComposite {
				var parts []string
				for _, c := range p.Components {
					parts = append(parts, value(c))
				}
				queries = []string{p.Code + "=" + strings.Join(parts, "$")}
			}
			for _, q := range queries {
				c, err := ParseCriteria(typ, q)
				require.NoError(t, err, "%s?%s", typ, q)
				_, err = c.Match(r)
				require.NoError(t, err)
			}
			n++
		}
	}
	require.Greater(t, n, 1500)
}
