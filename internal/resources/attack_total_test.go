package resources_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

// TestAttackTotalAccurateIgnoresByteBudget: _total=accurate is the number
// of matches, not the number that fit one page's response budget, on both
// stores, with and without a matcher, on first and later pages.
func TestAttackTotalAccurateIgnoresByteBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget = 256 << 10
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, 60<<10) // 720 KB in all
		for _, extra := range []url.Values{{}, {"name:contains": {"nnn"}}, {"_id": {"big-00,big-01,big-02,big-03,big-04,big-05,big-06,big-07,big-08,big-09,big-10,big-11"}}} {
			params := url.Values{"_count": {"1000"}, "_total": {"accurate"}}
			for k, v := range extra {
				params[k] = v
			}
			for page := 0; ; page++ {
				b, err := svc.Search(context.Background(), admin, "Patient", params, true)
				require.NoError(t, err)
				require.NotNil(t, b.Total)
				require.Equal(t, 12, *b.Total, "%v, page %d (%d entries)", extra, page, len(b.Entry))
				next, ok := nextPage(t, b)
				if !ok {
					break
				}
				params = next
			}
		}
	})
}
