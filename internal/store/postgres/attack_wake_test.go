package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// Attacks on bda5216: writes wake the delivery workers after they commit,
// through a notifier of their own, not with a NOTIFY in their transaction.
// The raw listener stands for another instance's listener: a
// herald_delivery notification it does not get is a wake-up no other
// instance gets, and the event waits for their poll (an hour in tests, 1 s
// by default).

// listenForWakes opens a connection listening on herald_delivery and
// attack_sentinel, and one to send the sentinel with.
func listenForWakes(t *testing.T, url string) (listen, db *pgx.Conn) {
	t.Helper()
	listen, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { listen.Close(context.Background()) })
	_, err = listen.Exec(t.Context(), "LISTEN herald_delivery; LISTEN attack_sentinel")
	require.NoError(t, err)
	db, err = pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close(context.Background()) })
	return listen, db
}

// notifiedBefore reports whether a herald_delivery notification was
// committed before now. Unlike woken it does not ask the Store to flush: use
// it once the Store is closed, or after an explicit flush.
func notifiedBefore(t *testing.T, listen, db *pgx.Conn) bool {
	t.Helper()
	return len(notificationsBefore(t, listen, db)) > 0
}

// wakeSessions counts the notifier sessions (application_name "… wake") on
// this test's database.
func wakeSessions(t *testing.T, db *pgx.Conn) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name LIKE '% wake'`).Scan(&n))
	return n
}

// TestAttackWakeNotifierSessionKilled: the notifier keeps one session
// open between writes. When that session dies while idle (here
// pg_terminate_backend; in production a server restart or failover, an
// idle_session_timeout, a proxy or firewall dropping idle connections), the
// next write's NOTIFY fails on the dead connection and is never retried: the
// notifier logs, reconnects only for the next request, and the write's
// wake-up is gone. No other instance hears of the committed event before
// its poll. Before bda5216 the NOTIFY was in the write's own transaction,
// on a pooled connection that is checked before use, and could not be lost
// after a commit.
func TestAttackWakeNotifierSessionKilled(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")
	listen, db := listenForWakes(t, url)
	woken(t, st, listen, db) // the puts'

	f.write("a")
	require.True(t, woken(t, st, listen, db), "premise: a write wakes the other instances")
	require.Equal(t, 1, wakeSessions(t, db), "premise: the notifier keeps one session")

	var killed int
	require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name LIKE '% wake') k`).Scan(&killed))
	require.Equal(t, 1, killed)
	require.Eventually(t, func() bool { return wakeSessions(t, db) == 0 }, 10*time.Second, 10*time.Millisecond)

	f.write("a") // committed: event 2 is due
	got := woken(t, st, listen, db)
	f.write("a")
	gotNext := woken(t, st, listen, db)
	t.Logf("after the notifier's session died: first write woke others %v, the next %v", got, gotNext)
	require.True(t, got, "a write committed after the notifier's idle session died woke no other instance: its event waits for their poll")
}

// TestAttackWakeCloseRightAfterWrite: a write that returned success and is
// followed at once by Store.Close (a graceful shutdown: the HTTP server
// drains, then the Store closes) must still wake the other instances: its
// event is committed and the client was told so. Close stops the notifier
// by cancelling it, dropping a NOTIFY that is pending or in flight (and
// requests after stop are dropped too), so the other instances find the
// event only at their poll. Before bda5216 the NOTIFY committed with the
// write. Cold: the Store's first write (the notifier still has to connect);
// warm: its notifier is connected already.
func TestAttackWakeCloseRightAfterWrite(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	listen, db := listenForWakes(t, url)
	setup := pgtest.Open(t, url, postgres.WithMaxConns(2))
	(&handoffFixture{t: t, st: setup}).put("a", "client", "active")
	setup.Close()
	notifiedBefore(t, listen, db) // drop anything so far

	const rounds = 10
	lost := map[string]int{}
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "cold", true: "warm"}[warm]
		for range rounds {
			st := pgtest.Open(t, url, postgres.WithMaxConns(2))
			f := &handoffFixture{t: t, st: st}
			if warm {
				f.write("a")
				require.True(t, woken(t, st, listen, db), "premise: a write wakes the other instances")
			}
			f.write("a")
			st.Close() // the notifier has stopped when Close returns
			if !notifiedBefore(t, listen, db) {
				lost[name]++
			}
		}
	}
	t.Logf("writes whose wake-up Close dropped, of %d each: %v", rounds, lost)
	require.Empty(t, lost, "a committed write followed by Close woke no other instance: its event waits for their poll")
}

// TestAttackWakeAppendEventBesideHandoff: tookAll compares the hand-off's
// tasks with the Subscriptions appended at commit (h.ids) only; t.appended
// also covers AppendEvent and AppendEvents, which append at once and never
// enter h.ids. A transaction that appends to a with AppendEvent and to b at
// commit, while an engine takes hand-offs, hands b off and then wakes no
// one: a's event is due, unleased, and no worker of any instance is woken
// for it. Before bda5216 AppendEvent's statement always notified.
// (Production writes use AppendEventsAtCommit only; store.Tx offers all
// three, and storetest uses AppendEvent.)
func TestAttackWakeAppendEventBesideHandoff(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")
	f.put("b", "client", "active")
	listen, db := listenForWakes(t, url)
	woken(t, st, listen, db) // the puts'
	wake := st.DeliveryWake()
	settleListener(t, st, db)
	select { // drop what the listener's start or the puts signalled
	case <-wake:
	default:
	}

	defer f.handOff()()
	ev := func(id string) store.Event {
		return store.Event{SubscriptionID: id, Timestamp: time.Now().Add(-time.Second), Topic: "https://example.org/topic",
			FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate}
	}
	require.NoError(t, st.InTx(t.Context(), func(tx store.Tx) error {
		if _, err := tx.AppendEvent(t.Context(), ev("a")); err != nil {
			return err
		}
		return tx.AppendEventsAtCommit(t.Context(), []store.Event{ev("b")})
	}))
	handed := f.eng.take()
	require.Len(t, handed, 1, "premise: b is handed off")
	require.Equal(t, "b", handed[0].State.ID)

	localWake := false
	select {
	case <-wake:
		localWake = true
	default:
	}
	others := woken(t, st, listen, db)
	tasks := f.claim(3)
	t.Logf("a's event: this process woken %v, others woken %v, a claim finds %d task(s)", localWake, others, len(tasks))
	require.Len(t, tasks, 1, "premise: a's event is due and claimable")
	require.True(t, localWake || others, "a's committed event is due and unleased, and no worker of any instance was woken for it")
}

// TestAttackWakeNotifierLifecycle (holds, expected): a Store that never
// writes opens no notifier session; its first write opens one, later writes
// reuse it, and Close ends it.
func TestAttackWakeNotifierLifecycle(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	_, db := listenForWakes(t, url)
	st := pgtest.Open(t, url, postgres.WithMaxConns(2))
	f := &handoffFixture{t: t, st: st}
	f.put("a", "client", "active")
	_ = st.DeliveryWake() // a listening Store
	st.FlushWakesForTest()
	require.Equal(t, 0, wakeSessions(t, db), "a Store that never numbered an event opened a notifier session")

	for range 5 {
		f.write("a")
	}
	st.FlushWakesForTest()
	require.Equal(t, 1, wakeSessions(t, db), "the notifier should keep exactly one session")

	st.Close()
	require.Eventually(t, func() bool { return wakeSessions(t, db) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the notifier's session outlived Close")
	st.FlushWakesForTest() // returns after Close
	f.write2AfterClose(t)
}

// write2AfterClose: a write on a closed Store fails and does not hang.
func (f *handoffFixture) write2AfterClose(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := f.st.InTx(ctx, func(tx store.Tx) error {
		return tx.AppendEventsAtCommit(ctx, []store.Event{{SubscriptionID: "a", Timestamp: time.Now(), Topic: "https://example.org/topic",
			FocusType: "Encounter", FocusID: "e9", FocusVersion: 1, Method: store.MethodUpdate}})
	})
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "a write on a closed Store hung")
}

// settleListener waits until st's listener heard a config notification sent
// now, so that whatever it signalled before has arrived.
func settleListener(t *testing.T, st *postgres.Store, db *pgx.Conn) {
	t.Helper()
	config := st.ConfigChanges()
	select {
	case <-config:
	default:
	}
	require.Eventually(t, func() bool {
		_, err := db.Exec(t.Context(), "NOTIFY herald_config")
		require.NoError(t, err)
		select {
		case <-config:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 10*time.Second, time.Millisecond, "the listener did not hear a config notification")
}
