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

// wakeNotifications returns the sessions (application_name) that sent the
// herald_delivery notifications committed before it is called.
func wakeNotifications(t *testing.T, st *postgres.Store, listen, db *pgx.Conn) []string {
	t.Helper()
	st.FlushWakesForTest()
	var senders []string
	for _, n := range notificationsBefore(t, listen, db) {
		var app string
		require.NoError(t, db.QueryRow(t.Context(), `SELECT coalesce((SELECT application_name FROM pg_stat_activity WHERE pid = $1), 'gone')`,
			n.PID).Scan(&app))
		senders = append(senders, app)
	}
	return senders
}

// TestWritesDoNotNotifyInTheirTransaction: a write that numbers events
// wakes the other instances after it committed, from the notifier's own
// session, never with a NOTIFY in its transaction (which would make every
// such write commit one after the other: PostgreSQL serializes the commits
// of notifying transactions through their WAL flush). With and without a
// hand-off receiver, and for AppendEvent as for AppendEventsAtCommit.
func TestWritesDoNotNotifyInTheirTransaction(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 0, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")
	f.put("b", "client", "active")

	listen, db := listenForWakes(t, url)
	wakeNotifications(t, st, listen, db) // the puts'

	onlyNotifier := func(what string, senders []string) {
		t.Helper()
		require.NotEmpty(t, senders, "%s woke no other instance", what)
		for _, app := range senders {
			require.Regexp(t, ` wake$`, app, "%s: a wake-up came from session %q, not the notifier's", what, app)
		}
	}
	f.write("a", "b")
	onlyNotifier("a write at commit", wakeNotifications(t, st, listen, db))

	require.NoError(t, st.InTx(t.Context(), func(tx store.Tx) error {
		_, err := tx.AppendEvent(t.Context(), store.Event{SubscriptionID: "a", Timestamp: time.Now(), Topic: "https://example.org/topic",
			FocusType: "Encounter", FocusID: "e2", FocusVersion: 1, Method: store.MethodCreate})
		return err
	}))
	onlyNotifier("AppendEvent", wakeNotifications(t, st, listen, db))

	defer f.handOff()() // an engine with no free worker: nothing is handed off
	f.write("a")
	onlyNotifier("a write beside a receiver without workers", wakeNotifications(t, st, listen, db))

	// A rolled-back write wakes no one.
	require.Error(t, st.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.AppendEventsAtCommit(t.Context(), []store.Event{{SubscriptionID: "b", Timestamp: time.Now(),
			Topic: "https://example.org/topic", FocusType: "Encounter", FocusID: "e3", FocusVersion: 1, Method: store.MethodCreate}}); err != nil {
			return err
		}
		return context.Canceled
	}))
	require.Empty(t, wakeNotifications(t, st, listen, db), "a rolled-back write woke the workers")
}

// TestWriteWakesThisProcessOnceAndOthersByNotify: a committed write wakes
// this Store's workers at once and another Store's (another instance)
// through PostgreSQL; this Store's listener skips the notifier's own
// NOTIFY, so that one write does not cost this instance two claims.
func TestWriteWakesThisProcessOnceAndOthersByNotify(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	a := pgtest.Open(t, url, postgres.WithMaxConns(4))
	b := pgtest.Open(t, url, postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: a, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")

	wakeA, wakeB := a.DeliveryWake(), b.DeliveryWake()
	configA := a.ConfigChanges()
	// Drain what the listeners' start and the put sent, until both are quiet:
	// a config change sent now arrives after all of it.
	settle := func() {
		t.Helper()
		a.FlushWakesForTest()
		db, err := pgx.Connect(t.Context(), url)
		require.NoError(t, err)
		defer db.Close(context.Background())
		select { // consume an earlier config signal, if any
		case <-configA:
		default:
		}
		_, err = db.Exec(t.Context(), "NOTIFY herald_config")
		require.NoError(t, err)
		select {
		case <-configA:
		case <-time.After(10 * time.Second):
			t.Fatal("A's listener did not hear the config notification")
		}
	}
	drain := func(ch <-chan struct{}) {
		select {
		case <-ch:
		default:
		}
	}
	settle()
	drain(wakeA)
	drain(wakeB)

	f.write("a")
	select {
	case <-wakeA:
	default:
		t.Fatal("the write did not wake this process's workers by the time it returned")
	}
	select {
	case <-wakeB:
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not wake the other instance")
	}
	settle() // A's listener has now heard the notifier's NOTIFY, if it was sent
	select {
	case <-wakeA:
		t.Fatal("A's listener woke A again for its own notifier's NOTIFY")
	default:
	}
}
