package delivery_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestUnrecordedOutcomeReleasesTheLease (issue 17, finding 11): when the
// outcome of a send cannot be written, the worker kept the lease until it
// expired (15 s by default), and only then did anyone send again. It now
// gives the lease back at once: the notification goes again (the same
// events, from the cursor) long before a one-minute lease would expire, and
// once outcomes can be written again the event is acknowledged once.
func TestUnrecordedOutcomeReleasesTheLease(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	st := pgtest.Open(t, url, postgres.WithMaxConns(4))
	e := newEnv(t, st, func(c *delivery.Config) { c.Lease = time.Minute })
	id := e.subscribe()
	e.waitStatus(id, "active")

	admin, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(t.Context()) })
	_, err = admin.Exec(t.Context(), `CREATE FUNCTION refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'the test refuses delivery outcomes'; END $$;
		CREATE TRIGGER refuse_outcome BEFORE UPDATE ON subscriptions FOR EACH ROW
		WHEN (NEW.delivered_through > OLD.delivered_through) EXECUTE FUNCTION refuse_outcome()`)
	require.NoError(t, err)

	e.encounter("a")
	e.recv.waitFor(t, "the same event sent again before the lease could expire", func(got []delivered) bool {
		n := 0
		for _, d := range got {
			if d.Bundle.Kind == "event-notification" {
				n++
			}
		}
		return n >= 2
	})

	_, err = admin.Exec(t.Context(), `DROP TRIGGER refuse_outcome ON subscriptions`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := st.Acknowledged(t.Context(), id)
		return err == nil && n == 1
	}, 20*time.Second, 20*time.Millisecond, "the event was never acknowledged once outcomes could be written")
}
