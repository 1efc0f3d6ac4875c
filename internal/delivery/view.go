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
//
// Both together hold at most maxBytes of resource bodies (and their
// patients): entries are counted, and so are bytes, since 4,096 versions
// of resources near the body limit would be gigabytes. A version larger
// than a quarter of maxBytes is served but not kept.
type cachedView struct {
	store.View
	now      func() time.Time
	maxBytes int64

	mu       sync.Mutex
	versions map[versionKey]store.Version
	current  map[resourceKey]currentEntry
	bytes    int64 // what versions and current hold, as versionBytes counts
}

const (
	maxCachedVersions = 4096
	maxCachedCurrent  = 4096
	currentTTL        = time.Second
	// DefaultCacheBytes bounds the resource cache of notifications.
	DefaultCacheBytes = 64 << 20
	// entryOverhead is what an entry costs beside its body: map slot,
	// keys, version metadata.
	entryOverhead = 256
)

// versionBytes is what keeping v costs, as the cache counts it.
func versionBytes(v store.Version) int64 {
	n := int64(len(v.Body) + len(v.Type) + len(v.ID) + entryOverhead)
	for _, p := range v.Patients {
		n += int64(len(p))
	}
	return n
}

// makeRoom makes room for n more bytes, dropping everything when they
// would not fit (crude, bounded, and refilled by the next fan-out); it
// reports whether n fits at all. c.mu is held.
func (c *cachedView) makeRoom(n int64) bool {
	if n > c.maxBytes/4 {
		return false
	}
	if c.bytes+n > c.maxBytes {
		clear(c.versions)
		clear(c.current)
		c.bytes = 0
	}
	return true
}

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

func newCachedView(v store.View, now func() time.Time, maxBytes int64) *cachedView {
	return &cachedView{View: v, now: now, maxBytes: maxBytes, versions: map[versionKey]store.Version{}, current: map[resourceKey]currentEntry{}}
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
	defer c.mu.Unlock()
	if _, ok := c.versions[k]; ok {
		return v, nil // another send read it meanwhile
	}
	if len(c.versions) >= maxCachedVersions {
		for _, old := range c.versions {
			c.bytes -= versionBytes(old)
		}
		clear(c.versions) // crude, bounded, and refilled by the next fan-out
	}
	if n := versionBytes(v); c.makeRoom(n) {
		c.versions[k] = v
		c.bytes += n
	}
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
	defer c.mu.Unlock()
	if old, ok := c.current[k]; ok {
		c.bytes -= versionBytes(old.v)
		delete(c.current, k)
	}
	if len(c.current) >= maxCachedCurrent {
		for _, old := range c.current {
			c.bytes -= versionBytes(old.v)
		}
		clear(c.current)
	}
	if n := versionBytes(v); c.makeRoom(n) {
		c.current[k] = currentEntry{v: v, err: err, at: now}
		c.bytes += n
	}
	return v, err
}
