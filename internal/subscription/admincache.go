package subscription

import (
	"context"
	"sync"
)

// AdminCache is the allow-list and the client registry as last read,
// shared by every send of this instance, with the configuration generation
// it was read at. topic.Follow refreshes it when the generation moves; a
// claim batch that saw a newer generation (store.DeliveryTask) refreshes it
// first, so a send never decides against state older than its claim, and
// the lists are read once per change instead of once per claim batch.
type AdminCache struct {
	Rules      *Rules
	Generation func(context.Context) (int64, error) // store.ConfigWatch's

	mu    sync.Mutex // one refresh at a time
	admin *Admin
	gen   int64
}

// Refresh reads the generation, then the allow-list and the registry: what
// it keeps is at least as new as the generation it records.
func (c *AdminCache) Refresh(ctx context.Context) error {
	gen, err := c.Generation(ctx)
	if err != nil {
		return err
	}
	a, err := c.Rules.ReadAdmin(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admin == nil || gen >= c.gen {
		c.admin, c.gen = a, gen
	}
	return nil
}

// AtLeast returns the cached state when it was read at generation gen or
// later, else reads it again.
func (c *AdminCache) AtLeast(ctx context.Context, gen int64) (*Admin, error) {
	c.mu.Lock()
	a, fresh := c.admin, c.admin != nil && c.gen >= gen
	c.mu.Unlock()
	if fresh {
		return a, nil
	}
	if err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.admin, nil
}
