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
