package retention_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/retention"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

// logAged puts Subscription id and logs one failed attempt per age (oldest
// first), as delivery does: with the outcome of a claim.
func logAged(t *testing.T, s store.Store, id string, ages ...time.Duration) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.PutSubscription(ctx, store.SubscriptionState{ID: id, Owner: "client", Status: "requested",
			Topic: "http://example.org/topic", Endpoint: "https://example.org/hook", Content: "id-only", CreatedAt: now, UpdatedAt: now})
	}))
	for _, age := range ages {
		tasks, err := s.ClaimDue(ctx, now.Add(day), 10, time.Minute, 0)
		require.NoError(t, err)
		var lease string
		for _, tk := range tasks {
			if tk.State.ID == id {
				lease = tk.Lease
			} else {
				require.NoError(t, s.ReleaseLease(ctx, tk.State.ID, tk.Lease))
			}
		}
		at := now.Add(-age)
		require.NoError(t, s.FinishDelivery(ctx, store.DeliveryResult{SubscriptionID: id, Lease: lease, Now: at, Failed: true, Next: at,
			Attempt: &store.Attempt{At: at, Instance: "i", Channel: "rest-hook", Kind: "handshake", Outcome: store.AttemptFailure, Class: "timeout"}}))
	}
}

func attemptAges(t *testing.T, s store.Store, id string) []time.Duration {
	t.Helper()
	as, err := s.Attempts(t.Context(), store.AttemptQuery{SubscriptionID: id})
	require.NoError(t, err)
	var out []time.Duration
	for _, a := range as {
		out = append(out, now.Sub(a.At))
	}
	return out
}

// TestAttemptBounds: the default age (7 days) and a count bound, on both
// stores.
func TestAttemptBounds(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) store.Store{
		"memory":   func(*testing.T) store.Store { return memory.New() },
		"postgres": func(t *testing.T) store.Store { return pgtest.New(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			logAged(t, s, "a", 10*day, 8*day, 6*day, 5*day, 4*day, day, 0)
			logAged(t, s, "b", 9*day, 2*day)
			j := &retention.Janitor{Store: s, Attempts: s, AttemptsPerSubscription: 3, Now: func() time.Time { return now }, Logger: logger(t)}
			n, err := j.PruneAttempts(t.Context())
			require.NoError(t, err)
			require.EqualValues(t, 2+2+1, n, "a: two older than 7 days and two over 3; b: one older")
			require.Equal(t, []time.Duration{0, day, 4 * day}, attemptAges(t, s, "a"), "the newest three")
			require.Equal(t, []time.Duration{2 * day}, attemptAges(t, s, "b"))
		})
	}
}

// TestRunPrunesAttemptsWithEventRetentionOff: keeping events forever does
// not keep attempts forever.
func TestRunPrunesAttemptsWithEventRetentionOff(t *testing.T) {
	s := memory.New()
	logAged(t, s, "a", 30*day, 0)
	j := &retention.Janitor{Store: s, Attempts: s, Interval: time.Millisecond, Now: func() time.Time { return now }, Logger: logger(t)}
	stop := runJanitor(t, j)
	defer stop()
	deadline := time.Now().Add(waitLimit)
	for len(attemptAges(t, s, "a")) != 1 {
		require.True(t, time.Now().Before(deadline), "the janitor never pruned the attempt log")
		<-time.After(time.Millisecond) // polling the condition until the deadline
	}
	require.Equal(t, []time.Duration{0}, attemptAges(t, s, "a"))
}
