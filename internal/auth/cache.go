package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cacheTTL caps how long a verified token is trusted without re-checking,
// which bounds how late a JWKS key removal takes effect.
const cacheTTL = time.Minute

// evictScan is how many entries an insert into a full cache inspects.
const evictScan = 8

// tokenCache remembers verified tokens by the SHA-256 of their text, so a
// client reusing its token skips signature checks. Only successes are
// cached: a failure must not be replayable as a success, and caching
// failures would let garbage tokens fill the cache.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	p       *Principal
	expires time.Time
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, entries: make(map[[sha256.Size]byte]cacheEntry, size)}
}

func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) *Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil
	}
	return e.p
}

// put keeps p until min(exp, now+cacheTTL). When full it evicts expired
// entries among a few, or else one arbitrary entry: map iteration order is
// random, which is a cheap approximation of random eviction and keeps
// inserts O(1).
func (c *tokenCache) put(key [sha256.Size]byte, p *Principal, now time.Time) {
	expires := now.Add(cacheTTL)
	if p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[key] = cacheEntry{p: p, expires: expires}
}

func (c *tokenCache) evict(now time.Time) {
	var victim [sha256.Size]byte
	live, seen := 0, 0
	for k, e := range c.entries {
		if now.Before(e.expires) {
			if live == 0 {
				victim = k
			}
			live++
		} else {
			delete(c.entries, k)
		}
		if seen++; seen == evictScan {
			break
		}
	}
	if live == seen {
		delete(c.entries, victim)
	}
}

// size is for tests.
func (c *tokenCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
