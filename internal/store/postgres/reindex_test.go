package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

// TestReindex: resources written without keys get them, once; after that
// a search the index decides finds exactly the right ones.
func TestReindex(t *testing.T) {
	t.Parallel()
	s := pgtest.New(t)
	ctx := t.Context()
	for i := range 1200 { // more than one batch
		v := store.Version{Type: "Patient", ID: fmt.Sprintf("p%04d", i), VersionID: 1, Method: store.MethodCreate,
			LastUpdated: time.Now(), Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%04d","gender":"%s"}`, i, []string{"male", "female"}[i%2])}
		require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.Put(ctx, v) }))
	}
	keys := func(v store.Version) []string {
		if v.ID[len(v.ID)-1]%2 == 0 {
			return []string{"Patient.gender=c:male"}
		}
		return []string{"Patient.gender=c:female"}
	}
	n, err := s.Reindex(ctx, keys)
	require.NoError(t, err)
	require.Equal(t, 1200, n)
	n, err = s.Reindex(ctx, keys)
	require.NoError(t, err)
	require.Zero(t, n, "indexed once")

	found, err := s.Search(ctx, store.SearchQuery{Type: "Patient", Index: [][]string{{"Patient.gender=c:female"}}})
	require.NoError(t, err)
	require.Len(t, found, 600)
}
