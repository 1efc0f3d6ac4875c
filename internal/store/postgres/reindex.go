package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

// Reindex gives live resources that have no search keys (written before
// migration 00012, or by a writer that computes none) the keys that keys
// returns, in batches, and reports how many it indexed. A resource changed
// meanwhile keeps the keys its new version was written with.
const (
	reindexBatch  = 500
	unindexedSQL  = `SELECT ` + versionColumns + ` FROM resources WHERE search_keys IS NULL AND NOT deleted AND (type, id) > ($1, $2) ORDER BY type, id LIMIT $3`
	setIndexedSQL = `UPDATE resources SET search_keys = $4 WHERE type = $1 AND id = $2 AND version_id = $3 AND search_keys IS NULL`
)

func (s *Store) Reindex(ctx context.Context, keys func(store.Version) []string) (int, error) {
	n := 0
	var afterType, afterID string
	for {
		vs, err := queryMany(ctx, s.pool, unindexedSQL, afterType, afterID, reindexBatch)
		if err != nil {
			return n, wrap("reindex", err)
		}
		if len(vs) == 0 {
			return n, nil
		}
		b := &pgx.Batch{}
		for _, v := range vs {
			k := keys(v)
			if k == nil {
				k = []string{}
			}
			b.Queue(setIndexedSQL, v.Type, v.ID, v.VersionID, k)
		}
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return n, wrap("reindex", err)
		}
		n += len(vs)
		afterType, afterID = vs[len(vs)-1].Type, vs[len(vs)-1].ID
	}
}
