package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
)

// ExplainClaimForTest is EXPLAIN (ANALYZE, BUFFERS) of claimSQL with
// ClaimDue's values, under planMode (plan_cache_mode), in a transaction
// that is rolled back (so nothing stays leased).
func (s *Store) ExplainClaimForTest(ctx context.Context, planMode string, now time.Time, limit int, leaseFor time.Duration, perOwner int) (string, error) {
	conn, err := s.deliveryPool().Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = `+planMode); err != nil {
		return "", err
	}
	rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+claimSQL, claimArgs(now, limit, leaseFor, 0, perOwner)...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// MigrateDownToForTest rolls back the migrations newer than version.
func MigrateDownToForTest(ctx context.Context, databaseURL string, version int64) error {
	return withProvider(databaseURL, func(p *goose.Provider) error {
		_, err := p.DownTo(ctx, version)
		return err
	})
}
