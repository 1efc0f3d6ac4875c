package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"

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
		FROM pg_prepared_statements WHERE statement LIKE '%FROM resources WHERE type = %'`).Scan(&generic, &custom)
	return generic, custom, err
}

// AnalyzeForTest gathers the planner's statistics on the resources table.
func (s *Store) AnalyzeForTest(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `ANALYZE resources`)
	return err
}

// ExplainSearchForTest is EXPLAIN ANALYZE of the first statement Search
// sends for sq, with sq's values, under a generic plan (as a statement
// reused by its connection is planned).
func (s *Store) ExplainSearchForTest(ctx context.Context, sq store.SearchQuery) (string, error) {
	sql, args := searchStatement(searchSQL, sq, true, nil)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		return "", err
	}
	defer conn.Exec(ctx, `RESET plan_cache_mode`)
	rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF) `+sql, args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

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

// ClaimTransferForTest claims as ClaimDue does and returns how many bytes
// of focus bodies PostgreSQL sent for it, those ClaimDue drops included:
// what the claim's transaction (its lock and row locks) lasts for.
func (s *Store) ClaimTransferForTest(ctx context.Context, now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) (int, error) {
	sent := 0
	err := s.claim(ctx, perOwner > 0, func(r claimEventRow) error {
		sent += len(r.FvBody)
		return nil
	}, claimArgs(now, limit, leaseFor, eventsPerTask, perOwner)...)
	return sent, err
}

// LeaseRowsForTest counts the rows of subscription_leases (migration 00019).
func (s *Store) LeaseRowsForTest(ctx context.Context) (n int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM subscription_leases`).Scan(&n)
	return n, err
}

// PreparedPlansForTest sums the generic and custom plans of the prepared
// statements of the pool's sessions whose text contains fragment; open the
// Store with WithMaxConns(1) so that every statement ran in that session.
func (s *Store) PreparedPlansForTest(ctx context.Context, fragment string) (generic, custom int64, err error) {
	return preparedPlans(ctx, s.pool, fragment)
}

// DeliveryPreparedPlansForTest is PreparedPlansForTest on the delivery pool.
func (s *Store) DeliveryPreparedPlansForTest(ctx context.Context, fragment string) (generic, custom int64, err error) {
	return preparedPlans(ctx, s.deliveryPool(), fragment)
}

func preparedPlans(ctx context.Context, p *timedPool, fragment string) (generic, custom int64, err error) {
	err = p.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
		FROM pg_prepared_statements WHERE strpos(statement, $1) > 0`, fragment).Scan(&generic, &custom)
	return generic, custom, err
}

// QueryForTest runs sql in the transaction (after what it deferred) and
// returns its one text value.
func (t *tx) QueryForTest(ctx context.Context, sql string) (string, error) {
	rows, err := t.q.Query(ctx, sql)
	if err != nil {
		return "", err
	}
	return pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
}

// HoldFinishesForTest keeps the Store's finisher (SeparateDeliveryPool),
// once it has taken an outcome, from taking the others and sending them
// until release is called; queued reports how many outcomes wait for it
// besides the one it holds, statements how many statements it has sent.
func (s *Store) HoldFinishesForTest() (release func(), queued, statements func() int) {
	var mu sync.Mutex
	mu.Lock()
	s.finishes.hold.Store(&mu)
	return mu.Unlock, func() int { return len(s.finishes.in) }, func() int { return int(s.finishes.statements.Load()) }
}

// FinisherStoppingForTest reports whether Close has told the Store's
// finisher to stop.
func (s *Store) FinisherStoppingForTest() bool { return s.finishes.ctx.Err() != nil }

// ClaimsForTest is how many claims (ClaimDue) the Store ran.
func (s *Store) ClaimsForTest() int64 { return s.claims.Load() }

// ProbeHandoffForTest makes every handing-off transaction of the Store run
// sql (one bigint) after its hand-off statement, before COMMIT, and hand
// the value to got.
func (s *Store) ProbeHandoffForTest(sql string, got func(int64)) {
	s.handoffMu.Lock()
	s.probe = &handoffProbe{sql: sql, got: got}
	s.handoffMu.Unlock()
}

// ClaimLockHeldSQL counts the sessions holding the claim lock of the
// current schema (claimLockSQL) whose pid satisfies pidCond (e.g.
// "= pg_backend_pid()").
func ClaimLockHeldSQL(pidCond string) string {
	return `SELECT count(*) FROM pg_locks, (SELECT ` + claimLockKey + ` AS k) key
		WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid ` + pidCond + `
			AND classid::bigint = (key.k >> 32) & 4294967295 AND objid::bigint = key.k & 4294967295`
}

// HoldClaimLockForTest takes the claim lock in a transaction of its own
// and holds it until release; pid is that session's.
func (s *Store) HoldClaimLockForTest(ctx context.Context) (release func(), pid int32, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		conn.Release()
		return nil, 0, err
	}
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		conn.Release()
		return nil, 0, err
	}
	if _, err := conn.Exec(ctx, claimLockSQL); err != nil {
		_, _ = conn.Exec(ctx, "ROLLBACK")
		conn.Release()
		return nil, 0, err
	}
	return func() {
		_, _ = conn.Exec(context.Background(), "ROLLBACK")
		conn.Release()
	}, pid, nil
}

// FlushWakesForTest waits until the NOTIFY of every wake-up asked for so far
// was sent (or failed): writes wake the other instances after they commit.
func (s *Store) FlushWakesForTest() { s.notifier.flushed() }
