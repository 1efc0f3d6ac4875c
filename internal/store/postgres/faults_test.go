package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// faultWait bounds how long a fault test waits for the store to give up; the
// configured timeouts are far shorter, the code under test far longer.
const faultWait = 10 * time.Second

// holdAdvisoryLock takes, on a connection of its own, the lock a creator of
// Patient/id takes, and holds it until the test ends.
func holdAdvisoryLock(t *testing.T, databaseURL, id string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), databaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(t.Context(), "BEGIN")
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/Patient/' || $1::text, 0))`, id)
	require.NoError(t, err)
}

// lockPatient runs a transaction that locks Patient/id, as a create does.
func lockPatient(ctx context.Context, s store.Store, id string) error {
	return s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Lock(ctx, "Patient", id)
		if err == store.ErrNotFound {
			return nil
		}
		return err
	})
}

func TestLockTimeoutEndsAWaitBehindAHeldLock(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.URL(t)
	s, err := postgres.Open(t.Context(), databaseURL, postgres.WithMaxConns(2), postgres.WithTimeouts(postgres.Timeouts{Lock: 200 * time.Millisecond}))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	holdAdvisoryLock(t, databaseURL, "held")

	ctx, cancel := context.WithTimeout(t.Context(), faultWait)
	defer cancel()
	err = lockPatient(ctx, s, "held")
	require.ErrorIs(t, err, store.ErrUnavailable, "lock_timeout, not the caller's deadline, ends the wait")
	require.NoError(t, ctx.Err())
}

func TestStatementTimeoutEndsALongStatement(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.URL(t)
	s, err := postgres.Open(t.Context(), databaseURL, postgres.WithMaxConns(2), postgres.WithTimeouts(postgres.Timeouts{Statement: 200 * time.Millisecond}))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	holdAdvisoryLock(t, databaseURL, "held") // waiting for it is one long statement

	ctx, cancel := context.WithTimeout(t.Context(), faultWait)
	defer cancel()
	err = lockPatient(ctx, s, "held")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.NoError(t, ctx.Err())
}

func TestPoolAcquireTimesOutWhenEveryConnectionIsBusy(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(t.Context(), pgtest.URL(t), postgres.WithMaxConns(1), postgres.WithTimeouts(postgres.Timeouts{Acquire: 200 * time.Millisecond}))
	require.NoError(t, err)
	t.Cleanup(s.Close)

	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.InTx(t.Context(), func(tx store.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	ctx, cancel := context.WithTimeout(t.Context(), faultWait)
	defer cancel()
	_, err = s.Current(ctx, "Patient", "p1")
	require.ErrorIs(t, err, store.ErrUnavailable, "a read does not queue behind a busy pool")
	require.ErrorIs(t, s.Ping(ctx), store.ErrUnavailable, "nor does the readiness check")
	require.NoError(t, ctx.Err())
	close(release)
	require.NoError(t, <-done)
}

func TestTerminatedConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	app := "herald_fault_" + randomName()
	s, err := postgres.Open(t.Context(), withParam(t, pgtest.URL(t), "application_name", app), postgres.WithMaxConns(1))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, s.Ping(t.Context()))

	admin, err := pgx.Connect(t.Context(), pgtest.UnmigratedURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	var n int
	require.NoError(t, admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n))
	require.Equal(t, 1, n)

	_, err = s.Current(t.Context(), "Patient", "p1")
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.Current(t.Context(), "Patient", "p1")
	require.ErrorIs(t, err, store.ErrNotFound, "the next call connects again")
}

func withParam(t *testing.T, databaseURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
