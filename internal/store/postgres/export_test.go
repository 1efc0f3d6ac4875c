package postgres

import (
	"context"
	"fmt"

	"github.com/pressly/goose/v3"
)

// MigrateDownForTest rolls back every migration, so tests can check the Down
// sections.
func MigrateDownForTest(ctx context.Context, databaseURL string) error {
	return withProvider(databaseURL, func(p *goose.Provider) error {
		if _, err := p.DownTo(ctx, 0); err != nil {
			return fmt.Errorf("postgres: migrate down: %w", err)
		}
		return nil
	})
}

// LatestVersion is the newest embedded migration.
var LatestVersion = latestVersion

// PlansForTest sums, over the prepared statements of the pool's
// connections it reaches (all of them with WithMaxConns(1)), the generic
// and custom plans of those that search the resources table.
func (s *Store) PlansForTest(ctx context.Context) (generic, custom int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
		FROM pg_prepared_statements WHERE statement LIKE '%FROM resources WHERE type = $1%'`).Scan(&generic, &custom)
	return generic, custom, err
}

// AnalyzeForTest gathers the planner's statistics on the resources table.
func (s *Store) AnalyzeForTest(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `ANALYZE resources`)
	return err
}
