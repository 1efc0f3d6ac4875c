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
// was missed), until ctx ends. also are other caches of the configuration
// (the allow-list and the client registry), refreshed with it.
func Follow(ctx context.Context, st Followed, lib *Library, interval time.Duration, log *slog.Logger, also ...func(context.Context) error) {
	changes := st.ConfigChanges()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := int64(-1)
	for {
		gen, err := st.ConfigGeneration(ctx)
		if err == nil && gen != last {
			if err = reload(ctx, st, lib, also); err == nil {
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

// reload refreshes lib and the other caches; any failure leaves the
// generation unseen, so the next check tries them all again.
func reload(ctx context.Context, st Followed, lib *Library, also []func(context.Context) error) error {
	if err := lib.Reload(ctx, st); err != nil {
		return err
	}
	for _, refresh := range also {
		if err := refresh(ctx); err != nil {
			return err
		}
	}
	return nil
}
