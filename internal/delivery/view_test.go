package delivery

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
)

// TestCachedViewBoundedByBytes: the notification resource cache counts the
// bytes it keeps and never holds more than its budget, however large the
// resources (issue 17, finding 2: it was bounded by 4,096 entries only,
// which for resources near the body limit is gigabytes).
func TestCachedViewBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	const n, size, budget = 64, 100 << 10, 1 << 20 // 6.4 MB of resources, 1 MiB budget
	for i := range n {
		id := fmt.Sprintf("b%d", i)
		body := fmt.Sprintf(`{"resourceType":"Basic","id":%q,"meta":{"versionId":"1"},"text":{"div":%q}}`, id, strings.Repeat("x", size))
		require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
			return tx.Put(ctx, store.Version{Type: "Basic", ID: id, VersionID: 1, LastUpdated: time.Now(), Method: store.MethodCreate, Body: []byte(body)})
		}))
	}
	c := newCachedView(st, time.Now, budget)
	held := func() int64 {
		var sum int64
		for _, v := range c.versions {
			sum += versionBytes(v)
		}
		for _, e := range c.current {
			sum += versionBytes(e.v)
		}
		return sum
	}
	for i := range n {
		id := fmt.Sprintf("b%d", i)
		v, err := c.Version(ctx, "Basic", id, 1)
		require.NoError(t, err)
		require.Greater(t, len(v.Body), size, "served in full")
		_, err = c.Current(ctx, "Basic", id)
		require.NoError(t, err)
		require.Equal(t, held(), c.bytes, "the count matches what is held")
		require.LessOrEqual(t, c.bytes, int64(budget), "after %d resources", i+1)
	}
	require.NotEmpty(t, c.versions, "the cache still caches")

	big := fmt.Sprintf(`{"resourceType":"Basic","id":"big","text":{"div":%q}}`, strings.Repeat("y", budget/2))
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		return tx.Put(ctx, store.Version{Type: "Basic", ID: "big", VersionID: 1, LastUpdated: time.Now(), Method: store.MethodCreate, Body: []byte(big)})
	}))
	v, err := c.Version(ctx, "Basic", "big", 1)
	require.NoError(t, err)
	require.Len(t, v.Body, len(big), "served")
	require.NotContains(t, c.versions, versionKey{resourceKey{"Basic", "big"}, 1}, "not kept: larger than a quarter of the budget")
}
