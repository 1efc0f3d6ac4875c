package topic

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

// Followed is what Follow reads: stored topics and the configuration
// generation of the store every instance shares.
type Followed interface {
	store.Reader
	store.ConfigWatch
}

// Follow keeps lib equal to the stored topics whichever instance changed
// them: it reloads when the store's configuration generation moves, which
// it checks on every change notification and every interval (in case one
// was missed), until ctx ends.
func Follow(ctx context.Context, st Followed, lib *Library, interval time.Duration, log *slog.Logger) {
	changes := st.ConfigChanges()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := int64(-1)
	for {
		gen, err := st.ConfigGeneration(ctx)
		if err == nil && gen != last {
			if err = lib.Reload(ctx, st); err == nil {
				last = gen
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("topic library: cannot follow the stored topics; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-tick.C:
		}
	}
}
