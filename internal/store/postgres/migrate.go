package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/herald-fhir/herald/migrations"
)

// latestVersion is the highest migration version embedded in the binary; Ping
// requires the database to have reached it.
var latestVersion = mustLatestVersion(migrations.FS)

func mustLatestVersion(fsys fs.FS) int64 {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil || len(names) == 0 {
		panic(fmt.Sprintf("postgres: no embedded migrations: %v", err))
	}
	var latest int64
	for _, name := range names {
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil {
			panic(fmt.Sprintf("postgres: migration %q is not named NNNNN_name.sql", name))
		}
		latest = max(latest, v)
	}
	return latest
}

// MigrationState is one embedded migration and whether the database has it.
type MigrationState struct {
	Version   int64
	Source    string // file name in migrations.FS
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// Migrate applies every pending embedded migration to the schema that
// databaseURL's search_path selects (creating goose_db_version there first if
// needed). Concurrent callers on the same schema wait for one another.
func Migrate(ctx context.Context, databaseURL string) error {
	return withProvider(databaseURL, func(p *goose.Provider) error {
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		return nil
	})
}

// MigrationStatus lists every embedded migration, oldest first, with whether
// it has been applied.
func MigrationStatus(ctx context.Context, databaseURL string) ([]MigrationState, error) {
	var out []MigrationState
	err := withProvider(databaseURL, func(p *goose.Provider) error {
		status, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("postgres: migration status: %w", err)
		}
		for _, st := range status {
			out = append(out, MigrationState{
				Version:   st.Source.Version,
				Source:    st.Source.Path,
				Applied:   st.State == goose.StateApplied,
				AppliedAt: st.AppliedAt,
			})
		}
		return nil
	})
	return out, err
}

// withProvider runs fn with a goose provider on a short-lived database/sql
// handle for databaseURL.
func withProvider(databaseURL string, fn func(*goose.Provider) error) (err error) {
	db, err := openSQL(databaseURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	p, err := newProvider(db)
	if err != nil {
		return err
	}
	return fn(p)
}

// openSQL opens databaseURL through pgx's database/sql driver, which goose
// needs. pgxpool.ParseConfig strips pool_* options that the server would
// reject as unknown runtime parameters.
func openSQL(databaseURL string) (*sql.DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(2) // the migration itself, and goose's status reads
	return db, nil
}

// newProvider returns a goose provider for the embedded migrations. It uses
// no package-level goose state, so tests can migrate schemas in parallel.
func newProvider(db *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(schemaLocker{}),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("postgres: goose: %w", err)
	}
	return p, nil
}

// schemaLocker serialises migrations of one schema with a session advisory
// lock keyed by the schema's name. Unlike goose's own Postgres locker it
// waits in the server instead of polling, and migrations of different
// schemas (parallel tests) do not wait for one another.
type schemaLocker struct{}

const (
	migrateLockSQL   = `SELECT pg_advisory_lock(hashtextextended('herald.migrate/' || current_schema(), 0))`
	migrateUnlockSQL = `SELECT pg_advisory_unlock(hashtextextended('herald.migrate/' || current_schema(), 0))`
)

func (schemaLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, migrateLockSQL); err != nil {
		return fmt.Errorf("postgres: take migration lock: %w", err)
	}
	return nil
}

func (schemaLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, migrateUnlockSQL); err != nil {
		return fmt.Errorf("postgres: release migration lock: %w", err)
	}
	return nil
}
