package delivery_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestAttackTwoDueTwoIdleWorkers: an engine of two workers, both idle, and
// two Subscriptions due (their retries after one failure each; retries are
// never handed off, only claimed). Both must be in flight at once. With the
// "leave one worker out while most are idle" rule (9028e2f) the claim takes
// one (limit 1 of 2 free), its result is "full" (1 of 1), so the poll timer
// is not re-armed and no claim runs again until a send ends: the second
// Subscription waits, next to an idle worker, for the first send's timeout.
func TestAttackTwoDueTwoIdleWorkers(t *testing.T) {
	t.Parallel()
	pg := pgtest.Open(t, pgtest.DatabaseURL(t), postgres.WithMaxConns(4))
	var mu sync.Mutex
	seen := map[string]int{}
	opts := func(c *delivery.Config) {
		c.Workers, c.Poll, c.Drain = 2, 100*time.Millisecond, 100*time.Millisecond
	}
	e := newEnv(t, pg, opts)
	e.recv.setAnswer(func(n int, d delivered) int {
		if d.Bundle.Kind != "event-notification" {
			return http.StatusOK
		}
		mu.Lock()
		defer mu.Unlock()
		sub := subscriptionOf(d)
		seen[sub]++
		if seen[sub] == 1 {
			return http.StatusInternalServerError // fails once: retried (by a claim) after RetryBase
		}
		return 0 // the retry hangs (up to the Subscription's timeout)
	})
	a := e.subscribe(withChannelExtension("timeout", 60))
	b := e.subscribe(withChannelExtension("timeout", 60))
	e.waitStatus(a, "active")
	e.waitStatus(b, "active")
	e.encounter("enc-1") // one event for each
	e.recv.waitFor(t, "both retries in flight at once (two due, two workers)", func(got []delivered) bool {
		hanging := map[string]bool{}
		for _, d := range got {
			if d.Bundle.Kind == "event-notification" && d.Status == 0 {
				hanging[subscriptionOf(d)] = true
			}
		}
		return len(hanging) == 2
	})
}
