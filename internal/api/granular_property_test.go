package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store"
)

// TestGranularSearchEqualsMatcher is TestSearchEqualsMatcher under a
// random granular scope: REST search (paged both ways with a random
// _count, and its _total) returns exactly the stored resources that both
// the scope's query and the search's query match (and, for a patient/
// scope, that lie in the token's patient's compartment), on both stores:
// the SQL bound (store.Bound, decided by the index where it can) and the
// matcher agree.
func TestGranularSearchEqualsMatcher(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		seed, rng, g, stored := seedObservations(t, h, all, 2, 60)

		narrowed := 0
		for range 80 {
			grant := g.query()
			var query []clause
			if rng.IntN(3) > 0 {
				query = g.query()
			}
			scopeContext, patient := []string{"system", "user", "patient"}[rng.IntN(3)], ""
			var mods []func(*auth.MintClaims)
			if scopeContext == "patient" {
				patient = g.pick(genPatients)
				mods = append(mods, forPatient(patient))
			}
			scope := scopeContext + "/Observation.rs?" + plusEscaped(grant)
			tok := h.token(scope, mods...)

			inGrant := matching(t, h.base, stored, grant)
			want := matching(t, h.base, stored, query)
			want = slices.DeleteFunc(want, func(id string) bool {
				if !slices.Contains(inGrant, id) {
					return true
				}
				return patient != "" && !slices.Contains(patientsOf(stored, id), patient)
			})
			paged := query
			sorted := rng.IntN(3) == 0
			if sorted {
				paged = append(slices.Clone(query), clause{"_sort", g.pick([]string{"date", "-date", "status,-_lastUpdated"})})
			}
			got := h.searchAll(t, tok, paged, 1+rng.IntN(7))
			if sorted {
				slices.Sort(got)
			}
			require.Equal(t, want, got, "scope %s, Observation?%s (seed %d)", scope, criteriaText(query), seed)

			r := h.request("GET", "/fhir/Observation?_summary=count&"+plusEscaped(query), tok, "")
			require.Equal(t, 200, r.status, string(r.body))
			require.Equal(t, float64(len(want)), r.json(t)["total"], "_summary=count under %s, Observation?%s (seed %d)", scope, criteriaText(query), seed)
			if len(want) < len(matching(t, h.base, stored, query)) {
				narrowed++
			}
		}
		require.Greater(t, narrowed, 20, "the grants discriminate")
	})
}

func patientsOf(stored []store.Version, id string) []string {
	for _, v := range stored {
		if v.ID == id {
			return v.Patients
		}
	}
	panic(fmt.Sprintf("no stored %s", id))
}

// plusEscaped is criteriaText with '+' escaped, as a URL query (and a
// scope's query) must write it to mean a plus sign.
func plusEscaped(cs []clause) string { return strings.ReplaceAll(criteriaText(cs), "+", "%2B") }
