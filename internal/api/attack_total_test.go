package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

// TestAttackTotalAccurateEqualsMatcher: _total=accurate, on first and
// later pages, sorted or not, under all-access, patient/ and granular
// tokens, and in a patient's compartment, equals the number of matches
// the token may see, on both stores; the first page's entries are the
// first of them.
func TestAttackTotalAccurateEqualsMatcher(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		all := h.token(allScopes)
		seed, rng, g, stored := seedObservations(t, h, all, 3, 60)
		for range 120 {
			var query []clause
			if rng.IntN(4) > 0 {
				query = g.query()
			}
			want := matching(t, h.base, stored, query)
			tok, desc := all, "all"
			var patient string
			switch rng.IntN(4) {
			case 1:
				patient = g.pick(genPatients)
				tok, desc = h.token("patient/Observation.rs", forPatient(patient)), "patient "+patient
			case 2:
				grant := g.query()
				ctx := []string{"system", "user", "patient"}[rng.IntN(3)]
				var mods []func(*auth.MintClaims)
				if ctx == "patient" {
					patient = g.pick(genPatients)
					mods = append(mods, forPatient(patient))
				}
				scope := ctx + "/Observation.rs?" + plusEscaped(grant)
				tok, desc = h.token(scope, mods...), scope
				inGrant := matching(t, h.base, stored, grant)
				want = slices.DeleteFunc(want, func(id string) bool { return !slices.Contains(inGrant, id) })
			}
			if patient != "" {
				want = slices.DeleteFunc(want, func(id string) bool { return !slices.Contains(patientsOf(stored, id), patient) })
			}
			path := "/fhir/Observation"
			if rng.IntN(4) == 0 {
				p := g.pick(genPatients)
				if patient != "" {
					p = patient
				}
				path = "/fhir/Patient/" + p + "/Observation"
				want = slices.DeleteFunc(want, func(id string) bool { return !slices.Contains(patientsOf(stored, id), p) })
			}
			q := url.Values{"_total": {"accurate"}}
			count := 1 + rng.IntN(12)
			q.Set("_count", fmt.Sprint(count))
			for _, c := range query {
				q.Add(c.name, c.value)
			}
			if rng.IntN(3) == 0 {
				q.Set("_sort", g.pick([]string{"date", "-date", "status,-_lastUpdated", "_id", "-_lastUpdated"}))
			}
			page := path + "?" + q.Encode()
			for n := 0; page != ""; n++ {
				r := h.request("GET", page, tok, "")
				require.Equal(t, 200, r.status, string(r.body))
				body := r.json(t)
				require.Equal(t, float64(len(want)), body["total"], "%s %s under %s (seed %d), page %d", path, q.Encode(), desc, seed, n)
				ids := entryIDs(t, r)
				for _, id := range ids {
					require.Contains(t, want, id, "%s %s under %s (seed %d)", path, q.Encode(), desc, seed)
				}
				if q.Get("_sort") == "" {
					require.Equal(t, fmt.Sprint(want[min(n*count, len(want)):min(n*count+len(ids), len(want))]), fmt.Sprint(ids), "%s %s under %s (seed %d), page %d", path, q.Encode(), desc, seed, n)
				}
				page = ""
				for _, l := range body["link"].([]any) {
					if link := l.(map[string]any); link["relation"] == "next" {
						u, _ := url.Parse(link["url"].(string))
						page = u.Path + "?" + u.RawQuery
					}
				}
			}
		}
	})
}
