package delivery_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestAttackReservationsPinnedByWaitingWrites: a write reserves its
// workers before its COMMIT round trip, and that round trip is where the
// write appends, so waits for the Subscription's row lock. Writes queued
// behind one busy Subscription row (a hot Subscription, a long transaction
// on it) hold every worker of the engine for as long as they wait: another
// Subscription's event, woken and due, is not sent, although no send is
// in flight. Before the hand-off, waiting writes held no worker.
func TestAttackReservationsPinnedByWaitingWrites(t *testing.T) {
	t.Parallel()
	url := pgtest.DatabaseURL(t)
	pg := pgtest.Open(t, url, postgres.WithMaxConns(8))
	e := newEnv(t, pg, func(c *delivery.Config) { c.Workers, c.Poll = 2, time.Hour })
	hot := e.subscribe()                          // Patient/p1
	other := e.subscribe(withPatientFilter("p2")) // Patient/p2
	e.waitStatus(hot, "active")
	e.waitStatus(other, "active")

	db, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer db.Close(context.Background())
	lockTx, err := db.Begin(t.Context())
	require.NoError(t, err)
	_, err = lockTx.Exec(t.Context(), `SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE`, hot)
	require.NoError(t, err)

	const writers = 2
	wrote := make(chan error, writers)
	for i := range writers {
		go func() { wrote <- writeEncounter(e, "enc-hot-"+strconv.Itoa(i), "p1") }()
	}
	queued := func() bool { // each write queued at its append (in its COMMIT round trip), holding the worker it reserved
		var n int
		require.NoError(t, db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0`).Scan(&n))
		return n >= writers
	}
	if !assert.Eventually(t, queued, 20*time.Second, 5*time.Millisecond, "the writes never queued on the hot row") {
		rows, _ := db.Query(t.Context(), `SELECT coalesce(wait_event_type, ''), coalesce(wait_event, ''), state || ' pid ' || pid || ' blocked by ' || pg_blocking_pids(pid)::text || ' app ' || application_name || ' xact ' || coalesce(backend_xid::text, '-'), left(query, 120) FROM pg_stat_activity WHERE datname = current_database()`)
		for rows.Next() {
			var a, b, c, d string
			_ = rows.Scan(&a, &b, &c, &d)
			t.Logf("session: %s %s %s %q", a, b, c, d)
		}
		rows.Close()
		t.FailNow()
	}
	t.Cleanup(func() {
		_ = lockTx.Rollback(context.Background())
		for range writers {
			<-wrote
		}
	})

	require.NoError(t, writeEncounter(e, "enc-other", "p2")) // fires for other only
	e.recv.waitFor(t, "the other Subscription's event, with no send in flight", func(got []delivered) bool {
		for _, d := range got {
			if d.Bundle.Kind == "event-notification" && d.Status == 200 && subscriptionOf(d) == "/Subscription/"+other {
				return true
			}
		}
		return false
	})
}

func writeEncounter(e *env, id, patient string) error {
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, id, patient)
	_, err := e.svc.Update(context.Background(), publisher, "Encounter", id, []byte(body), "")
	return err
}
