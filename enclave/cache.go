package enclave

import (
	"sync"
	"sync/atomic"

	"github.com/keyraft/keyraft/internal/crypto"
)

// cacheEntry is an unsealed key, valid only while the FSM record it was
// unsealed from (identified by its Raft index) is current.
type cacheEntry struct {
	index  uint64
	key    crypto.KeyVersion
	usedAt atomic.Int64 // unix nanos, for unused-key eviction
}

type cacheKey struct{ enclave, name string }

// keyCache is the in-memory unsealed key cache. It is consulted only after
// the FSM confirms the record, so a stale entry is never served.
type keyCache struct {
	mu sync.RWMutex
	m  map[cacheKey]*cacheEntry
}

func newKeyCache() *keyCache { return &keyCache{m: map[cacheKey]*cacheEntry{}} }

func (c *keyCache) get(enclave, name string, index uint64) (*cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[cacheKey{enclave, name}]
	c.mu.RUnlock()
	if !ok || e.index != index {
		return nil, false
	}
	return e, true
}

func (c *keyCache) put(enclave, name string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{enclave, name}
	if old, ok := c.m[k]; ok && old.index > e.index {
		return // a newer record was unsealed concurrently
	}
	c.m[k] = e
}

// evict drops an entry. The key bytes are not zeroed here: a request that
// read the entry before eviction may still be using them; they become
// garbage when it finishes.
func (c *keyCache) evict(enclave, name string) {
	c.mu.Lock()
	delete(c.m, cacheKey{enclave, name})
	c.mu.Unlock()
}

func (c *keyCache) evictEnclave(enclave string) {
	c.mu.Lock()
	for k := range c.m {
		if k.enclave == enclave {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

func (c *keyCache) clear() {
	c.mu.Lock()
	c.m = map[cacheKey]*cacheEntry{}
	c.mu.Unlock()
}

// lastUse returns when this node last used a cached key (0 if never).
func (c *keyCache) lastUse(enclave, name string) int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.m[cacheKey{enclave, name}]; ok {
		return e.usedAt.Load()
	}
	return 0
}

// usedSince returns, per enclave, the keys used after the given time.
func (c *keyCache) usedSince(since int64) map[string][]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string][]string{}
	for k, e := range c.m {
		if e.usedAt.Load() > since {
			out[k.enclave] = append(out[k.enclave], k.name)
		}
	}
	return out
}
