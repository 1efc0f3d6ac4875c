package postgres_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return pgtest.New(t) })
}

// TestConformanceWithDeliveryPool: the same contract holds when the
// delivery queue has a pool of its own (herald serve's default).
func TestConformanceWithDeliveryPool(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := pgtest.New(t)
		require.NoError(t, s.SeparateDeliveryPool(t.Context(), 2))
		return s
	})
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.UnmigratedURL(t)

	s, err := postgres.Open(ctx, url, postgres.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.ErrorContains(t, s.Ping(ctx), "not migrated", "Ping fails on an empty schema")

	status, err := postgres.MigrationStatus(ctx, url)
	require.NoError(t, err)
	require.NotEmpty(t, status)
	for _, m := range status {
		require.False(t, m.Applied, "%s pending before Migrate", m.Source)
	}
	require.Equal(t, postgres.LatestVersion, status[len(status)-1].Version)
	require.Equal(t, "00001_resources.sql", status[0].Source)
	require.Equal(t, "00002_subscriptions.sql", status[1].Source)
	require.Equal(t, "00003_events.sql", status[2].Source)

	// Two instances starting at once: the migration lock makes one wait.
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- postgres.Migrate(ctx, url) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)

	status, err = postgres.MigrationStatus(ctx, url)
	require.NoError(t, err)
	for _, m := range status {
		require.True(t, m.Applied, "%s applied", m.Source)
		require.False(t, m.AppliedAt.IsZero())
	}
	require.NoError(t, s.Ping(ctx))

	require.NoError(t, postgres.Migrate(ctx, url), "re-running Migrate is a no-op")
	require.NoError(t, s.Ping(ctx))

	// The store works on the schema the URL selects.
	v := store.Version{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Now().Truncate(time.Millisecond),
		Method: store.MethodCreate, Body: []byte(`{}`)}
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.Put(ctx, v) }))

	// Down removes everything Up made; Up works again after it.
	require.NoError(t, s.AddEndpoint(ctx, store.AllowedEndpoint{ID: "e1", URLPrefix: "https://example.org/", CreatedAt: v.LastUpdated}))
	require.NoError(t, postgres.MigrateDownForTest(ctx, url))
	require.Error(t, s.Ping(ctx), "Ping fails once migrations are rolled back")
	require.NoError(t, postgres.Migrate(ctx, url))
	require.NoError(t, s.Ping(ctx))
	_, err = s.Current(ctx, "Patient", "p1")
	require.ErrorIs(t, err, store.ErrNotFound, "tables were dropped and re-created")
	endpoints, err := s.Endpoints(ctx)
	require.NoError(t, err)
	require.Empty(t, endpoints, "the allow-list was dropped and re-created")
}

// TestInTxRetriesDeadlock: two transactions lock two resources in opposite
// order; PostgreSQL aborts one with deadlock_detected (after
// deadlock_timeout, 1 s by default), InTx runs it again, and both commit.
func TestInTxRetriesDeadlock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	for _, id := range []string{"r1", "r2"} {
		v := store.Version{Type: "Basic", ID: id, VersionID: 1, LastUpdated: time.Now().Truncate(time.Millisecond),
			Method: store.MethodCreate, Body: []byte(`{}`)}
		require.NoError(t, s.InTx(ctx, func(tx store.Tx) error { return tx.Put(ctx, v) }))
	}

	var calls atomic.Int32
	// run locks first, signals that it holds it, waits for the other
	// transaction to hold its first lock, then locks second and updates both.
	// The channels are closed once, so a retried run does not wait again.
	run := func(first, second string, mine, theirs chan struct{}, once *sync.Once) error {
		return s.InTx(ctx, func(tx store.Tx) error {
			calls.Add(1)
			a, err := tx.Lock(ctx, "Basic", first)
			if err != nil {
				return err
			}
			once.Do(func() { close(mine) })
			select {
			case <-theirs:
			case <-ctx.Done():
				return ctx.Err()
			}
			b, err := tx.Lock(ctx, "Basic", second)
			if err != nil {
				return err
			}
			for _, cur := range []store.Version{a, b} {
				cur.VersionID++
				if err := tx.Put(ctx, cur); err != nil {
					return err
				}
			}
			return nil
		})
	}
	aHolds, bHolds := make(chan struct{}), make(chan struct{})
	var aOnce, bOnce sync.Once
	errs := make(chan error, 2)
	go func() { errs <- run("r1", "r2", aHolds, bHolds, &aOnce) }()
	go func() { errs <- run("r2", "r1", bHolds, aHolds, &bOnce) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	require.GreaterOrEqual(t, calls.Load(), int32(3), "the deadlock victim ran again")
	for _, id := range []string{"r1", "r2"} {
		cur, err := s.Current(ctx, "Basic", id)
		require.NoError(t, err)
		require.EqualValues(t, 3, cur.VersionID, "both updates of %s committed", id)
	}
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	_, err = postgres.Open(t.Context(), "::not a url")
	require.Error(t, err)
}

// benchParallelism goroutines per GOMAXPROCS stand in for concurrent HTTP
// requests; commits from many connections share WAL flushes.
const benchParallelism = 8

func reportOpsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkPut creates new resources, one transaction each (a FHIR create).
func BenchmarkPut(b *testing.B) {
	s := pgtest.New(b, postgres.WithMaxConns(postgres.DefaultMaxConns))
	body := []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":72,"unit":"beats/minute"}}`)
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := store.Version{Type: "Observation", ID: fmt.Sprint("o", next.Add(1)), VersionID: 1,
				LastUpdated: time.Now().Truncate(time.Millisecond), Method: store.MethodCreate,
				Body: body, Patients: []string{"p1"}}
			if err := s.InTx(b.Context(), func(tx store.Tx) error { return tx.Put(b.Context(), v) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSecond(b)
}

// BenchmarkUpdate locks and updates existing resources (a FHIR update).
func BenchmarkUpdate(b *testing.B) {
	const n = 1000
	s := pgtest.New(b, postgres.WithMaxConns(postgres.DefaultMaxConns))
	body := []byte(`{"resourceType":"Patient","active":true}`)
	seed(b, s, n, body)
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("p", next.Add(1)%n)
			err := s.InTx(b.Context(), func(tx store.Tx) error {
				cur, err := tx.Lock(b.Context(), "Patient", id)
				if err != nil {
					return err
				}
				return tx.Put(b.Context(), store.Version{Type: "Patient", ID: id, VersionID: cur.VersionID + 1,
					LastUpdated: time.Now().Truncate(time.Millisecond), Method: store.MethodUpdate, Body: body})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSecond(b)
}

// BenchmarkCurrent reads random existing resources (a FHIR read).
func BenchmarkCurrent(b *testing.B) {
	const n = 1000
	s := pgtest.New(b, postgres.WithMaxConns(postgres.DefaultMaxConns))
	seed(b, s, n, []byte(`{"resourceType":"Patient","active":true}`))
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Current(b.Context(), "Patient", fmt.Sprint("p", rand.IntN(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSecond(b)
}

func seed(b *testing.B, s store.Store, n int, body []byte) {
	b.Helper()
	err := s.InTx(b.Context(), func(tx store.Tx) error {
		for i := range n {
			err := tx.Put(b.Context(), store.Version{Type: "Patient", ID: fmt.Sprint("p", i), VersionID: 1,
				LastUpdated: time.Now().Truncate(time.Millisecond), Method: store.MethodCreate, Body: body})
			if err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(b, err)
}

// TestDeliveryPoolCommitsWithoutFlush: the delivery queue's own pool
// commits its leases and outcomes without waiting for the WAL flush, and
// the pool that writes resources and events still waits for it (also
// before a delivery pool is opened, when the queue shares that pool).
func TestDeliveryPoolCommitsWithoutFlush(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	main, delivery, err := postgres.SynchronousCommit(ctx, s)
	require.NoError(t, err)
	require.Equal(t, "on", main, "shared pool")
	require.Equal(t, "on", delivery, "the queue on the shared pool")

	require.NoError(t, s.SeparateDeliveryPool(ctx, 1))
	main, delivery, err = postgres.SynchronousCommit(ctx, s)
	require.NoError(t, err)
	require.Equal(t, "on", main, "resource and event writes wait for the flush")
	require.Equal(t, "off", delivery, "delivery pool")
}

// TestLockedCreateLosesToUnlockedCreator: a create after Lock is sent with
// the transaction's next statement or its commit; when a writer that took
// no lock created the resource meanwhile, the locked creator's transaction
// still fails with ErrConflict (at its commit) and stores nothing, and the
// other's version stays the only one.
func TestLockedCreateLosesToUnlockedCreator(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.New(t)
	v := func(who string) store.Version {
		return store.Version{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Now().Truncate(time.Millisecond),
			Method: store.MethodUpdate, Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":"p1","who":%q}`, who)}
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.Lock(ctx, "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lock: %w", err)
		}
		if err := tx.Put(ctx, v("locked")); err != nil {
			return err
		}
		// The unlocked creator commits first (it does not wait: the
		// locked creator's insert has not been sent yet).
		return s.InTx(ctx, func(other store.Tx) error { return other.Put(ctx, v("unlocked")) })
	})
	require.ErrorIs(t, err, store.ErrConflict)
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	require.NoError(t, err)
	require.Len(t, hist, 1)
	require.Contains(t, string(hist[0].Body), `"unlocked"`)
}
