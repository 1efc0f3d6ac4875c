package delivery_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// flapEnv is a Herald whose Subscriptions may carry a 1 MB reason, turn
// error at the first failure, and stay error for recoverAfter.
func flapEnv(t *testing.T, st store.Store, recoverAfter time.Duration) *env {
	e := newEnv(t, st, func(c *delivery.Config) { c.ErrorAfter, c.RecoverAfter = 1, recoverAfter })
	e.rules.Policy.MaxReasonBytes, e.rules.Policy.MaxSubscriptionBytes = 2<<20, 4<<20
	return e
}

// failFirstAttempts answers 500 to the first attempt of every event
// notification and 200 to the rest: each event makes one flap.
func failFirstAttempts() func(int, delivered) int {
	var mu sync.Mutex
	seen := map[int64]bool{}
	return func(_ int, d delivered) int {
		mu.Lock()
		defer mu.Unlock()
		if d.Bundle.Kind != "event-notification" || len(d.Bundle.Event) == 0 || seen[d.Bundle.Event[0]] {
			return http.StatusOK
		}
		seen[d.Bundle.Event[0]] = true
		return http.StatusInternalServerError
	}
}

func incompressible(n int) string {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestStatusFlapsStoreBoundedVersions is issue 17's finding 3: every
// error/active flap stored a whole new version of the Subscription (with a
// 3.5 MB reason, 1.3 GB a day). 100 flaps of a Subscription with a 1 MB
// reason now add one error version in all: the status stays error for
// RecoverAfter while deliveries go on, and the resource, the state and
// the client's own versioned updates all still agree.
func TestStatusFlapsStoreBoundedVersions(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var st store.Store = memory.New()
			storedBytes := func(string) int64 { return -1 }
			if name == "postgres" {
				url := pgtest.URL(t)
				pg := pgtest.Open(t, url, postgres.WithMaxConns(4))
				st = pg
				storedBytes = func(id string) int64 {
					conn, err := pgx.Connect(context.Background(), url)
					require.NoError(t, err)
					defer conn.Close(context.Background())
					var n int64
					require.NoError(t, conn.QueryRow(context.Background(),
						`SELECT coalesce(sum(pg_column_size(body)), 0) FROM resource_versions WHERE type = 'Subscription' AND id = $1`, id).Scan(&n))
					return n
				}
			}
			e := flapEnv(t, st, time.Hour)
			reason := incompressible(1 << 20)
			id := e.subscribe(func(m map[string]any) { m["reason"] = reason })
			e.waitStatus(id, "active")
			before := storedBytes(id)

			e.recv.setAnswer(failFirstAttempts())
			const flaps = 100
			for i := range flaps {
				e.encounter(fmt.Sprintf("flap-%d", i))
				e.recv.waitFor(t, fmt.Sprintf("event %d acknowledged after its failed first attempt", i+1), func(got []delivered) bool {
					return slices.Contains(ackedEvents(got), int64(i+1))
				})
			}
			failed := 0
			for _, d := range e.recv.all() {
				if d.Status == http.StatusInternalServerError {
					failed++
				}
			}
			require.Equal(t, flaps, failed, "every event failed once, then went through")

			hist, err := st.History(context.Background(), store.HistoryQuery{Type: "Subscription", ID: id})
			require.NoError(t, err)
			require.Equal(t, 3, len(hist), "created, active, error: the flaps added one version, not %d", 2*flaps)
			state := e.state(id)
			require.Equal(t, "error", state.Status, "the state tells the truth: errors within the last RecoverAfter")
			res := e.resource(id)
			require.Equal(t, "error", res["status"], "and so does the resource (GET, search)")
			require.NotEmpty(t, res["error"])
			if name == "postgres" {
				added := storedBytes(id) - before
				t.Logf("%d flaps of a Subscription with a %d-byte reason stored %d bytes", flaps, len(reason), added)
				require.Less(t, added, int64(2*len(reason)), "one more copy of the resource at most")
			}

			// The client's own update still works against the version it read.
			_, err = e.svc.Update(context.Background(), client, "Subscription", id,
				[]byte(subscriptionJSON(e.recv.srv.URL+"/hook", func(m map[string]any) { m["id"] = id; m["reason"] = "shorter" })), `W/"3"`)
			require.NoError(t, err)
			e.waitStatus(id, "active")
		})
	}
}

// TestErrorRecoversAfterTheWait: a Subscription whose endpoint answers
// again stays error until RecoverAfter has passed since its errors began,
// then a probe (a heartbeat reporting error) makes it active, without
// waiting for the next event.
func TestErrorRecoversAfterTheWait(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := flapEnv(t, st, 2*time.Second)
		id := e.subscribe()
		e.waitStatus(id, "active")
		e.recv.setAnswer(failFirstAttempts())
		e.encounter("once")
		e.recv.waitFor(t, "the event acknowledged on its retry", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
		require.Equal(t, "error", e.state(id).Status, "acknowledged within RecoverAfter of the failure: still error")
		e.waitStatus(id, "active")
		got := e.recv.all()
		last := got[len(got)-1]
		require.Equal(t, "heartbeat", last.Bundle.Kind, "the probe")
		require.Equal(t, "error", last.Bundle.State, "sent while still error")
		hist, err := st.History(context.Background(), store.HistoryQuery{Type: "Subscription", ID: id})
		require.NoError(t, err)
		require.Equal(t, 4, len(hist), "created, active, error, active")
	})
}
