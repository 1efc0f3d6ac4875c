package delivery_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/typerules"
)

// wakeSetup: instance B runs the delivery engine (Poll: an hour, so only
// wake-ups make it claim); instance A only serves writes (no engine, as an
// API-only instance, or one whose workers are all busy). It returns B's
// env (its receiver gets the notifications) and A's writer.
func wakeSetup(t *testing.T) (b, a *env, stA *postgres.Store, direct string) {
	t.Helper()
	direct = pgtest.DatabaseURL(t)
	stA = pgtest.Open(t, direct, postgres.WithMaxConns(4))
	stB := pgtest.Open(t, direct, postgres.WithMaxConns(6))
	b = newEnv(t, stB, func(c *delivery.Config) { c.Poll = time.Hour })
	a = &env{t: t, st: stA, lib: b.lib, rules: b.rules, recv: b.recv, svc: resources.New(resources.Config{Store: stA, BaseURL: baseURL,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: b.lib, BaseURL: baseURL}).Hook},
		Rules:   typerules.Rules(b.rules, b.lib)})}
	id := b.subscribe()
	b.waitStatus(id, "active")
	return b, a, stA, direct
}

// eventsAcked returns the event numbers B's receiver acknowledged.
func eventsAcked(e *env) []int64 {
	var out []int64
	for _, d := range e.recv.acked() {
		if d.Bundle.Kind == "event-notification" {
			out = append(out, d.Bundle.Event...)
		}
	}
	return out
}

// TestAttackWakeKilledNotifierLeavesEventToThePoll: end to end, the
// store-level TestAttackWakeNotifierSessionKilled. A's notifier session
// dies while idle (server restart, failover, idle timeout, a proxy); A's
// next write commits and its event is not delivered by B until B's poll.
func TestAttackWakeKilledNotifierLeavesEventToThePoll(t *testing.T) {
	t.Parallel()
	b, a, _, direct := wakeSetup(t)
	require.NoError(t, writeEncounter(a, "enc-1", "p1"))
	require.Eventually(t, func() bool { return slices.Contains(eventsAcked(b), 1) }, 10*time.Second, 10*time.Millisecond,
		"premise: A's write wakes B")

	db, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer db.Close(context.Background())
	var killed int
	require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name LIKE '% wake') k`).Scan(&killed))
	require.Equal(t, 1, killed, "premise: A's notifier has a session")
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE '% wake'`).Scan(&n))
		return n == 0
	}, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, writeEncounter(a, "enc-2", "p1"))
	require.Eventually(t, func() bool { return slices.Contains(eventsAcked(b), 2) }, 5*time.Second, 10*time.Millisecond,
		"event 2, committed by A after its notifier's session died, was not delivered: B was not woken and polls hourly (acked %v)", eventsAcked(b))
}

// TestAttackWakeCloseAfterWriteLeavesEventToThePoll: end to end, the
// store-level TestAttackWakeCloseRightAfterWrite. A answers a write (the
// event committed) and shuts down; B does not deliver the event until its
// poll.
func TestAttackWakeCloseAfterWriteLeavesEventToThePoll(t *testing.T) {
	t.Parallel()
	b, a, stA, _ := wakeSetup(t)
	require.NoError(t, writeEncounter(a, "enc-1", "p1"))
	stA.Close()
	require.Eventually(t, func() bool { return slices.Contains(eventsAcked(b), 1) }, 5*time.Second, 10*time.Millisecond,
		"event 1, committed by A right before A closed its Store, was not delivered: B was not woken and polls hourly")
}
