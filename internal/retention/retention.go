// Package retention runs the event janitor: it deletes notification events
// that are older than the retention period and that their subscriber has
// acknowledged (store.EventPruner). Unacknowledged events are never deleted,
// whatever their age, so a subscriber that is behind can still catch up
// through $events. It also bounds the delivery attempt log by age and by
// count per Subscription (store.AttemptLog).
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

const (
	// DefaultInterval is how often Run prunes when Interval is not set.
	DefaultInterval = time.Hour
	// DefaultBatchSize is how many events one PruneEvents call deletes at
	// most when BatchSize is not set; small batches keep each DELETE (and
	// its locks and WAL) short.
	DefaultBatchSize = 1000
)

// Janitor prunes old acknowledged events. Store and Retention are required;
// the other fields have defaults. A Janitor must not be changed while Run or
// PruneOnce runs.
type Janitor struct {
	Store store.EventPruner
	// Retention is how long an event is kept at least; <= 0 disables
	// pruning (PruneOnce deletes nothing, Run returns at once).
	Retention time.Duration
	// Interval between runs of Run (default DefaultInterval).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a line per run that deleted something, and errors
	// (default slog.Default()).
	Logger *slog.Logger
	// BatchSize is the limit of each PruneEvents call (default
	// DefaultBatchSize).
	BatchSize int

	// Attempts, when set, has its attempt log pruned on every run: attempts
	// older than AttemptRetention (<= 0: DefaultAttemptRetention) and all
	// but the newest AttemptsPerSubscription of each Subscription (<= 0:
	// DefaultAttemptsPerSubscription).
	Attempts                store.AttemptLog
	AttemptRetention        time.Duration
	AttemptsPerSubscription int
}

// Defaults of the attempt log's bounds.
const (
	DefaultAttemptRetention        = 7 * 24 * time.Hour
	DefaultAttemptsPerSubscription = 1000
)

// Run prunes once at once and then every Interval until ctx is done. Errors
// are logged, and the next tick tries again.
func (j *Janitor) Run(ctx context.Context) {
	if j.Retention <= 0 {
		j.logger().Info("event retention disabled")
		if j.Attempts == nil {
			return
		}
	}
	interval := j.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		j.runOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// runOnce is one pruning run of Run, logged.
func (j *Janitor) runOnce(ctx context.Context) {
	start := time.Now()
	n, err := j.PruneOnce(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down; not worth an error line.
	case err != nil:
		j.logger().Error("event retention: prune failed", "err", err, "deleted", n)
	case n > 0:
		j.logger().Info("event retention: pruned events", "deleted", n,
			"retention", j.Retention, "took", time.Since(start).Round(time.Millisecond))
	}
	n, err = j.PruneAttempts(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		j.logger().Error("attempt retention: prune failed", "err", err)
	case n > 0:
		j.logger().Info("attempt retention: pruned delivery attempts", "deleted", n)
	}
}

// PruneAttempts applies the attempt log's bounds once and returns how many
// attempts it deleted; none without Attempts.
func (j *Janitor) PruneAttempts(ctx context.Context) (int64, error) {
	if j.Attempts == nil {
		return 0, nil
	}
	age, keep := j.AttemptRetention, j.AttemptsPerSubscription
	if age <= 0 {
		age = DefaultAttemptRetention
	}
	if keep <= 0 {
		keep = DefaultAttemptsPerSubscription
	}
	return j.Attempts.PruneAttempts(ctx, j.now()().Add(-age), keep)
}

func (j *Janitor) now() func() time.Time {
	if j.Now != nil {
		return j.Now
	}
	return time.Now
}

// PruneOnce deletes every acknowledged event older than Retention, in
// batches of BatchSize until a batch comes back short, and returns how many
// it deleted (also when it fails part way). The cut-off is fixed when it
// starts.
func (j *Janitor) PruneOnce(ctx context.Context) (int64, error) {
	if j.Retention <= 0 {
		return 0, nil
	}
	now := j.now()
	batch := j.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	before := now().Add(-j.Retention)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := j.Store.PruneEvents(ctx, before, batch)
		total += n
		if err != nil {
			return total, err
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

func (j *Janitor) logger() *slog.Logger {
	if j.Logger != nil {
		return j.Logger
	}
	return slog.Default()
}
