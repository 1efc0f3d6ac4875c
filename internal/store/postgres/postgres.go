// Package postgres is the production store.Store, on PostgreSQL through pgx.
// It is the only package that holds SQL.
//
// The schema lives in migrations/ and is applied by Migrate. Tables are never
// schema-qualified, so the schema a Store uses is the first one on the
// connection's search_path; set it with the search_path option of the
// database URL (postgres://…/db?search_path=herald) to keep Herald, or a test,
// in a schema of its own.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-fhir/herald/internal/store"
)

// DefaultMaxConns is the pool size used unless WithMaxConns or the URL's
// pool_max_conns says otherwise. A few connections per core keep both cores
// busy while others wait for the WAL flush of a commit.
const DefaultMaxConns = 16

// maxTxAttempts bounds how often InTx runs fn when PostgreSQL reports a
// serialization failure or a deadlock.
const maxTxAttempts = 4

// Store is a store.Store backed by a pgxpool.Pool.
type Store struct {
	pools
	listener
	handoffs
	notifier wakeNotifier // wakeDelivery's NOTIFYs to the other instances
}

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	pool           *pgxpool.Config
	acquireTimeout time.Duration
}

// WithMaxConns sets the most connections the pool opens (default
// DefaultMaxConns).
func WithMaxConns(n int32) Option {
	return func(o *options) { o.pool.MaxConns = n }
}

// WithMinConns sets how many idle connections the pool keeps open (default 0).
func WithMinConns(n int32) Option {
	return func(o *options) { o.pool.MinConns = n }
}

// Timeouts bound how long the database may keep a caller waiting; zero
// leaves a bound off. A statement or lock wait that hits its bound, and an
// acquire that finds no free connection in time, fail with an error matching
// store.ErrUnavailable.
type Timeouts struct {
	Statement time.Duration // PostgreSQL statement_timeout of every connection
	Lock      time.Duration // PostgreSQL lock_timeout of every connection
	Acquire   time.Duration // wait for a free pooled connection
}

// WithTimeouts sets the Timeouts.
func WithTimeouts(t Timeouts) Option {
	return func(o *options) {
		setMillis(o.pool, "statement_timeout", t.Statement)
		setMillis(o.pool, "lock_timeout", t.Lock)
		o.acquireTimeout = t.Acquire
	}
}

func setMillis(c *pgxpool.Config, param string, d time.Duration) {
	if d > 0 {
		c.ConnConfig.RuntimeParams[param] = strconv.FormatInt(max(d.Milliseconds(), 1), 10)
	}
}

// Open connects to databaseURL (a postgres:// URL or a key=value DSN; pgxpool
// options such as pool_max_conns are honoured) and checks that the server
// answers. It does not check the schema: call Migrate first, and Ping to
// verify.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "herald"
	}
	o := options{pool: cfg}
	for _, opt := range opts {
		opt(&o)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{pools: pools{pool: &timedPool{Pool: pool, acquireTimeout: o.acquireTimeout}}}, nil
}

// Close closes every connection. It is safe to call more than once.
func (s *Store) Close() {
	s.notifier.stop()
	s.listener.stop()
	s.closePools()
}

// pingSQL reads the schema version goose recorded; goose_db_version lives in
// the same schema as the tables it describes.
const pingSQL = `SELECT coalesce(max(version_id), 0) FROM goose_db_version`

// Ping reports whether the database answers and every embedded migration has
// been applied to the schema this Store uses.
func (s *Store) Ping(ctx context.Context) error {
	var version int64
	if err := s.pool.QueryRow(ctx, pingSQL).Scan(&version); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return errors.New("postgres: schema not migrated (no goose_db_version table)")
		}
		return fmt.Errorf("postgres: ping: %w", err)
	}
	if version < latestVersion {
		return fmt.Errorf("postgres: schema at version %d, want %d: run migrations", version, latestVersion)
	}
	return nil
}

// InTx runs fn in a READ COMMITTED transaction and commits when fn returns
// nil. When the transaction fails with a serialization failure or deadlock,
// it is rolled back and fn runs again after a short backoff, up to
// maxTxAttempts times in all; if it still fails, InTx returns an error that
// matches store.ErrConflict.
func (s *Store) InTx(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := unavailable(s.runTx(ctx, fn))
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxTxAttempts || !backoff(ctx, attempt) {
			return fmt.Errorf("%w: transaction failed %d times: %w", store.ErrConflict, attempt, err)
		}
	}
}

// backoff waits a few milliseconds, more after each attempt and jittered, so
// that the transaction that won the race finishes before the loser runs
// again (a loser retried at once can grab a row lock first and deadlock
// anew). It reports false if ctx ended first.
func backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(attempt) * (2*time.Millisecond + rand.N(3*time.Millisecond))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tx is a store.Tx on one pgx transaction.
type tx struct {
	q *lazyTx
	// locked are the resources whose Lock the transaction holds, with
	// the head version it last read or wrote (0: none).
	locked map[resourceKey]int64
	// handoff is what the transaction may hand to a delivery engine at
	// commit; nil when no engine takes hand-offs (HandOffTo).
	handoff *txHandoff
	// appended: the transaction numbered events, so its commit wakes the
	// delivery workers, unless it handed every one off; appendedNow: some
	// by AppendEvent or AppendEvents, which the hand-off does not see.
	appended, appendedNow bool
}

// runTx runs fn in one transaction on one pooled connection.
func (s *Store) runTx(ctx context.Context, fn func(store.Tx) error) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	lt := &lazyTx{conn: conn}
	t := &tx{q: lt, handoff: s.newTxHandoff()}
	committed := false
	defer func() {
		t.handoff.done(committed) // after a panic too: the reserved workers are freed
		if p := recover(); p != nil {
			_ = lt.finish(context.Background(), false)
			panic(p)
		}
	}()
	if err := fn(t); err != nil {
		if rbErr := lt.finish(context.WithoutCancel(ctx), false); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	t.handoff.prepare(lt)
	// Deferred statements travel with COMMIT: their errors are interpreted
	// here (a concurrent creator's unique_violation is ErrConflict).
	if err := lt.finish(ctx, true); err != nil {
		if t.appended {
			// The COMMIT's answer may have been lost after it committed.
			s.wakeDelivery()
		}
		return fmt.Errorf("postgres: commit: %w", interpretError(err))
	}
	committed = true
	if t.appended && (t.appendedNow || !t.handoff.tookAll()) {
		s.wakeDelivery()
	}
	return nil
}

var _ store.Tx = (*tx)(nil)

// retryable reports whether err means the transaction lost a race that
// running it again may win: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40001" || pgErr.Code == "40P01"
}

// interpretError translates pgx errors into the store's sentinels at the
// edge: no rows is store.ErrNotFound, a unique violation is store.ErrConflict
// (two writers created the same version). Other errors, including the
// retryable ones InTx looks for, keep their cause so errors.As still finds
// the *pgconn.PgError.
func interpretError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}

// wrap interprets err and names the operation that failed. Not-found is
// returned bare: it is an answer, not a failure.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	err = interpretError(err)
	if err == store.ErrNotFound {
		return err
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
