package resources_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

// TestAttackBudgetedSortedPages: under a small response budget, sorted and
// unsorted searches (with and without a matcher, _total=accurate) walk
// every match exactly once along next links, every page within the
// budget, every total the number of matches.
func TestAttackBudgetedSortedPages(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		seed := rand.Uint64()
		rng := rand.New(rand.NewPCG(seed, 5))
		const budget = 6000
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxResponseBytes: budget})
		statuses := []string{"final", "amended", "preliminary"}
		want := map[string][]string{}
		for i := range 30 {
			id := fmt.Sprintf("o%02d", i)
			s := statuses[rng.IntN(3)]
			body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":%q,"code":{"text":%q},"effectiveDateTime":"2024-01-%02d"}`, id, s, strings.Repeat("t", 1+rng.IntN(2500)), 1+rng.IntN(28))
			_, err := svc.Update(context.Background(), admin, "Observation", id, []byte(body), "")
			require.NoError(t, err)
			want[s] = append(want[s], id)
			want[""] = append(want[""], id)
		}
		for range 60 {
			params := url.Values{"_count": {fmt.Sprint(1 + rng.IntN(40))}, "_total": {"accurate"}}
			key := ""
			switch rng.IntN(3) {
			case 1:
				key = statuses[rng.IntN(3)]
				params.Set("status", key)
			case 2:
				key = statuses[rng.IntN(3)]
				params.Set("status", key)
				params.Set("code:text", "t") // a matcher
				params.Set("_id", strings.Join(want[""], ","))
			}
			if rng.IntN(2) == 0 {
				params.Set("_sort", []string{"date", "-date", "status,date"}[rng.IntN(3)])
			}
			seen := map[string]int{}
			total := -1
			for page := 0; page < 100; page++ {
				b, err := svc.Search(context.Background(), admin, "Observation", params, true)
				require.NoError(t, err, "%v (seed %d)", params, seed)
				require.LessOrEqual(t, resourceBytes(b), budget)
				if total < 0 {
					total = *b.Total
				}
				require.Equal(t, total, *b.Total, "%v page %d (seed %d)", params, page, seed)
				for _, e := range b.Entry {
					seen[strings.TrimPrefix(e.FullURL, base+"/Observation/")]++
				}
				next, ok := nextPage(t, b)
				if !ok {
					break
				}
				params = next
			}
			var got []string
			for id, n := range seen {
				require.Equal(t, 1, n, "%s seen %d times (%v, seed %d)", id, n, params, seed)
				got = append(got, id)
			}
			slices.Sort(got)
			require.Equal(t, total, len(got), "%v (seed %d)", params, seed)
			if params.Get("code:text") == "" {
				require.Equal(t, fmt.Sprint(want[key]), fmt.Sprint(got), "%v (seed %d)", params, seed)
			}
		}
	})
}
