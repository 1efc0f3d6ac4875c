package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
)

// TestAttackSortedSearchOrder: a sorted search's pages, walked by next
// links, are the matches in the order of their sort keys read from the
// whole resource (ties by id), on both stores, whether the page is built
// from the ranking read (every match fits it) or read again.
func TestAttackSortedSearchOrder(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		seed, rng, g, stored := seedObservations(t, h, tok, 4, 50)
		codes := []string{"date", "status", "value-quantity", "code", "subject", "identifier", "category", "patient", "_id", "_lastUpdated"}
		for range 100 {
			var query []clause
			if rng.IntN(3) > 0 {
				query = g.query()
			}
			want := matching(t, h.base, stored, query)
			var keys []string
			for range 1 + rng.IntN(2) {
				k := g.pick(codes)
				if rng.IntN(2) == 0 {
					k = "-" + k
				}
				keys = append(keys, k)
			}
			if strings.TrimPrefix(keys[0], "-") == "_id" || strings.TrimPrefix(keys[0], "-") == "_lastUpdated" {
				keys[0] = "date"
			}
			res := map[string]*search.Resource{}
			for _, v := range stored {
				r, err := search.NewResource(v.Body)
				require.NoError(t, err)
				res[v.ID] = r
			}
			slices.SortStableFunc(want, func(a, b string) int {
				for _, k := range keys {
					code, desc := strings.TrimPrefix(k, "-"), strings.HasPrefix(k, "-")
					ka, kb := res[a].SortKey(code, desc), res[b].SortKey(code, desc)
					c := search.CompareSortKeys(ka, kb)
					if desc && ka.Present && kb.Present {
						c = -c
					}
					if c != 0 {
						return c
					}
				}
				return strings.Compare(a, b)
			})
			q := url.Values{"_sort": {strings.Join(keys, ",")}}
			count := 1 + rng.IntN(len(want)+3)
			q.Set("_count", fmt.Sprint(count))
			for _, c := range query {
				q.Add(c.name, c.value)
			}
			var got []string
			page := "/fhir/Observation?" + q.Encode()
			for page != "" {
				r := h.request("GET", page, tok, "")
				require.Equal(t, 200, r.status, string(r.body))
				got = append(got, entryIDs(t, r)...)
				page = ""
				for _, l := range r.json(t)["link"].([]any) {
					if link := l.(map[string]any); link["relation"] == "next" {
						u, _ := url.Parse(link["url"].(string))
						page = u.Path + "?" + u.RawQuery
					}
				}
			}
			require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "Observation?%s (seed %d)", q.Encode(), seed)
		}
	})
}
