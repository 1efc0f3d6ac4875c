package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

// cachedView is the store as notifications read it. A write that fires for
// a thousand Subscriptions has its focus version read a thousand times in a
// few milliseconds, so:
//
//   - Versions are immutable: (type, id, version) always has the same
//     bytes, so they are kept, up to maxCachedVersions, and served from
//     memory. This cache is exact.
//   - Current versions (the resources a topic's notificationShape includes)
//     are kept for currentTTL: an included resource may be up to that much
//     older than the notification.
type cachedView struct {
	store.View
	now func() time.Time

	mu       sync.Mutex
	versions map[versionKey]store.Version
	current  map[resourceKey]currentEntry
}

const (
	maxCachedVersions = 4096
	maxCachedCurrent  = 4096
	currentTTL        = time.Second
)

type resourceKey struct{ typ, id string }

type versionKey struct {
	resourceKey
	version int64
}

type currentEntry struct {
	v   store.Version
	err error
	at  time.Time
}

func newCachedView(v store.View, now func() time.Time) *cachedView {
	return &cachedView{View: v, now: now, versions: map[versionKey]store.Version{}, current: map[resourceKey]currentEntry{}}
}

func (c *cachedView) Version(ctx context.Context, typ, id string, version int64) (store.Version, error) {
	k := versionKey{resourceKey{typ, id}, version}
	c.mu.Lock()
	v, ok := c.versions[k]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := c.View.Version(ctx, typ, id, version)
	if err != nil {
		return v, err // not found is not cached: the version may be committing
	}
	c.mu.Lock()
	if len(c.versions) >= maxCachedVersions {
		clear(c.versions) // crude, bounded, and refilled by the next fan-out
	}
	c.versions[k] = v
	c.mu.Unlock()
	return v, nil
}

func (c *cachedView) Current(ctx context.Context, typ, id string) (store.Version, error) {
	k := resourceKey{typ, id}
	now := c.now()
	c.mu.Lock()
	e, ok := c.current[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < currentTTL {
		return e.v, e.err
	}
	v, err := c.View.Current(ctx, typ, id)
	if err != nil && err != store.ErrNotFound {
		return v, err
	}
	c.mu.Lock()
	if len(c.current) >= maxCachedCurrent {
		clear(c.current)
	}
	c.current[k] = currentEntry{v: v, err: err, at: now}
	c.mu.Unlock()
	return v, err
}
