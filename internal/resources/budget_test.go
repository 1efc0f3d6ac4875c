package resources_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// bigPatients stores n Patients of about size bytes each.
func bigPatients(t *testing.T, svc *resources.Service, n, size int) {
	t.Helper()
	for i := range n {
		_, err := svc.Update(context.Background(), admin, "Patient", fmt.Sprintf("big-%02d", i),
			patient(fmt.Sprintf("big-%02d", i), fmt.Sprintf(`"name":[{"text":%q}]`, strings.Repeat("n", size))), "")
		require.NoError(t, err)
	}
}

// resourceBytes sums the resources a Bundle carries, as the budget counts
// them (without the per-entry allowance).
func resourceBytes(b *fhir.Bundle) int {
	n := 0
	for _, e := range b.Entry {
		n += len(e.Resource)
	}
	return n
}

// TestSearchPageStopsAtByteBudget: a _count=1000 search of resources that
// together exceed HERALD_MAX_RESPONSE_BYTES ends its page at the budget,
// and the next links walk every match exactly once (issue 17, finding 2:
// pages were bounded only by _count, so by _count × the body limit).
func TestSearchPageStopsAtByteBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget = 256 << 10
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, 60<<10) // 720 KB in all

		seen := map[string]int{}
		params := url.Values{"_count": {"1000"}}
		pages := 0
		for {
			b, err := svc.Search(context.Background(), admin, "Patient", params, true)
			require.NoError(t, err)
			pages++
			require.LessOrEqual(t, resourceBytes(b), budget, "page %d within the budget", pages)
			require.NotEmpty(t, b.Entry)
			for _, e := range b.Entry {
				seen[strings.TrimPrefix(e.FullURL, base+"/Patient/")]++
			}
			next, ok := nextPage(t, b)
			if !ok {
				break
			}
			params = next
			require.Less(t, pages, 20, "paging must end")
		}
		require.Len(t, seen, 12)
		for id, n := range seen {
			require.Equal(t, 1, n, "%s on exactly one page", id)
		}
		require.GreaterOrEqual(t, pages, 3, "720 KB in pages of at most 256 KiB")
	})
}

// TestBatchResponseWithinByteBudget: the finding's batch of three
// _count=1000 searches answers within one budget: every search entry's page
// shares it (each still ends with a next link), and a read that no longer
// fits gets 413, while a write keeps its answer without the resource.
func TestBatchResponseWithinByteBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget = 256 << 10
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, 60<<10)

		search := `{"request":{"method":"GET","url":"Patient?_count=1000"}}`
		big := fmt.Sprintf(`{"resourceType":"Patient","id":"late","name":[{"text":%q}]}`, strings.Repeat("w", 60<<10))
		b, err := svc.Bundle(context.Background(), admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+
			search+`,`+search+`,`+search+`,
			{"request":{"method":"GET","url":"Patient/big-00"}},
			{"resource":`+big+`,"request":{"method":"PUT","url":"Patient/late"}}]}`), false)
		require.NoError(t, err)
		require.Len(t, b.Entry, 5)
		total := 0
		for i, e := range b.Entry[:3] {
			if e.Response.Status != "200 OK" {
				require.True(t, strings.HasPrefix(e.Response.Status, "413"), "search %d: %s", i, e.Response.Status)
				require.NotNil(t, e.Response.Outcome, "with an OperationOutcome saying why")
				continue
			}
			var page struct {
				Entry []struct {
					Resource json.RawMessage `json:"resource"`
				} `json:"entry"`
			}
			require.NoError(t, strictjson.Unmarshal(e.Resource, &page))
			for _, m := range page.Entry {
				total += len(m.Resource)
			}
		}
		require.Equal(t, "200 OK", b.Entry[0].Response.Status, "the first search got its page")
		require.Contains(t, string(b.Entry[0].Resource), `"relation":"next"`, "which ends early, with a next link")
		require.LessOrEqual(t, total, budget, "the three searches together within the budget")
		require.True(t, strings.HasPrefix(b.Entry[3].Response.Status, "413"), "the read no longer fits: %s", b.Entry[3].Response.Status)
		require.Equal(t, "201 Created", b.Entry[4].Response.Status, "the write happened and says so")
		require.Nil(t, b.Entry[4].Resource, "without the resource that does not fit")
		_, err = st.Current(context.Background(), "Patient", "late")
		require.NoError(t, err)
	})
}

// TestSortedSearchRefusesTooManyMatches: a search sorted by a key in the
// bodies decodes every match to rank it, so more than MaxSortMatches are
// refused (413, too-costly) rather than ranked; at the bound it sorts and
// pages. By _id (or _lastUpdated) the store orders and pages, uncapped.
func TestSortedSearchRefusesTooManyMatches(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxSortMatches: 5})
		bigPatients(t, svc, 5, 10)
		b, err := svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"-name"}, "_count": {"2"}}, true)
		require.NoError(t, err)
		require.Equal(t, 5, *b.Total)
		require.Equal(t, base+"/Patient/big-00", b.Entry[0].FullURL, "equal names: ties by id")

		bigPatients(t, svc, 6, 10)
		_, err = svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"-name"}, "_count": {"2"}}, true)
		var fe *fhir.Error
		require.ErrorAs(t, err, &fe)
		require.Equal(t, fhir.KindTooLarge, fe.Kind)
		require.Contains(t, fe.Error(), "more than 5 resources match")

		b, err = svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"-_id"}, "_count": {"2"}}, true)
		require.NoError(t, err)
		require.Equal(t, 6, *b.Total)
		require.Equal(t, base+"/Patient/big-05", b.Entry[0].FullURL)
	})
}
