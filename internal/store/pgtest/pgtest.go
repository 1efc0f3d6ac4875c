// Package pgtest gives tests a PostgreSQL schema of their own.
//
// Each call creates a uniquely named schema (herald_test_<random>) in the
// database named by DATABASE_URL, migrates it, and drops it with CASCADE when
// the test ends. Without DATABASE_URL the test is skipped, or fails when the
// CI environment variable is set, so that CI cannot go green by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store/postgres"
)

// cleanupTimeout bounds dropping a test schema.
const cleanupTimeout = 30 * time.Second

// New returns a Store on a fresh migrated schema. The Store is closed and
// the schema dropped when t ends. Its pool is small (4 connections) unless
// opts say otherwise, since many tests run at once.
func New(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	return Open(t, URL(t), opts...)
}

// Open returns a Store on databaseURL (from URL or DatabaseURL), closed when
// t ends; several Stores on one URL stand for several instances. Its pool
// is 4 connections unless opts say otherwise.
func Open(t testing.TB, databaseURL string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	opts = append([]postgres.Option{postgres.WithMaxConns(4)}, opts...)
	s, err := postgres.Open(t.Context(), databaseURL, opts...)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Close) // runs before URL's cleanup drops the schema
	return s
}

// URL returns DATABASE_URL pinned (through search_path) to a fresh migrated
// schema, for tests that open their own store, such as the HTTP server's.
// The schema is dropped when t ends; close whatever uses it before then, for
// example with a t.Cleanup registered after calling URL.
func URL(t testing.TB) string {
	t.Helper()
	schemaURL := UnmigratedURL(t)
	if err := postgres.Migrate(t.Context(), schemaURL); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return schemaURL
}

// UnmigratedURL is URL without the migration: the schema is empty.
func UnmigratedURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("pgtest: DATABASE_URL not set in CI; Postgres tests must run there")
		}
		t.Skip("DATABASE_URL not set; skipping Postgres tests (set it to run them)")
	}
	schema := "herald_test_" + randomHex(8)
	ctx := t.Context()

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to DATABASE_URL: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	schemaURL, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return schemaURL
}

func dropSchema(t testing.TB, base, schema string) {
	// t.Context is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}

// withSearchPath sets the search_path run-time parameter in a postgres:// URL
// or a key=value DSN.
func withSearchPath(databaseURL, schema string) (string, error) {
	if !strings.Contains(databaseURL, "://") {
		return databaseURL + " search_path=" + schema, nil
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

// DatabaseURL is URL on a fresh migrated database of its own rather than a
// schema, for tests that must not hear other tests' notifications
// (LISTEN/NOTIFY channels are database-wide): heavier, use it only then.
// The database is dropped when t ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	base := UnmigratedURL(t) // skips or fails without DATABASE_URL, as URL does
	if !strings.Contains(base, "://") {
		t.Skip("pgtest: DatabaseURL needs a postgres:// DATABASE_URL")
	}
	admin := os.Getenv("DATABASE_URL")
	name := "herald_test_" + randomHex(8)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	if err := postgres.Migrate(ctx, u.String()); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u.String()
}
