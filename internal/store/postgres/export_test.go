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

// SynchronousCommit is the synchronous_commit setting of a session of the
// main pool and of one of the delivery queue's pool.
func SynchronousCommit(ctx context.Context, s *Store) (main, delivery string, err error) {
	if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&main); err != nil {
		return "", "", err
	}
	err = s.deliveryPool().QueryRow(ctx, "SHOW synchronous_commit").Scan(&delivery)
	return main, delivery, err
}

// SubscriptionsStatement is the query Subscriptions runs for f.
var SubscriptionsStatement = subscriptionsStatement
