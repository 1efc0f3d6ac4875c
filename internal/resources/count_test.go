package resources_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

// TestMaxCountIsConfigurable: a _count above Config.MaxCount gets MaxCount
// entries, and the links say so, on search and history.
func TestMaxCountIsConfigurable(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc := resources.New(resources.Config{Store: st, BaseURL: base, MaxCount: 3})
		for range 5 {
			_, err := svc.Create(ctx, admin, "Patient", patient(""))
			require.NoError(t, err)
		}
		b, err := svc.Search(ctx, admin, "Patient", url.Values{"_count": {"10"}}, false)
		require.NoError(t, err)
		require.Len(t, b.Entry, 3)
		require.Contains(t, b.Link[0].URL, "_count=3")
		h, err := svc.TypeHistory(ctx, admin, "Patient", url.Values{"_count": {"10"}})
		require.NoError(t, err)
		require.Len(t, h.Entry, 3)
	})
}
