package delivery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackoff: exponential from the base, capped, with jitter in the upper
// half of each step.
func TestBackoff(t *testing.T) {
	e := New(Config{RetryBase: time.Second, RetryCap: 5 * time.Minute})
	for failures, step := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 9: 256 * time.Second,
		10: 5 * time.Minute, 11: 5 * time.Minute, 34: 5 * time.Minute, 35: 5 * time.Minute,
		36: 5 * time.Minute, 39: 5 * time.Minute, 64: 5 * time.Minute, 100: 5 * time.Minute, 1 << 30: 5 * time.Minute,
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := e.backoff(failures)
			require.GreaterOrEqual(t, d, step/2, "failure %d", failures)
			require.LessOrEqual(t, d, step, "failure %d", failures)
			seen[d] = true
		}
		require.Greater(t, len(seen), 1, "failure %d: jittered", failures)
	}
}
