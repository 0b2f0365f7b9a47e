package enclave

import (
	"sync"
	"sync/atomic"

	"github.com/keyraft/keyraft/internal/crypto"
)

// cacheEntry is an unsealed key: this node's plaintext copy of one FSM
// record (identified by the Raft index that wrote it). It is valid only
// while that record is current, and lives at most Cache.Any (see
// Service.key) and Cache.Unused without use (see Service.sweep).
//
// Entries are reference counted so that dropping one can zero its key: the
// cache holds one reference, every request using the key another
// (acquire/release). The last release zeroes the key material.
type cacheEntry struct {
	index      uint64
	keys       crypto.Versions // every version of the key
	unsealedAt int64           // unix nanos
	usedAt     atomic.Int64    // unix nanos, coarse (see touch)
	refs       atomic.Int32
}

func newCacheEntry(index uint64, keys crypto.Versions, now int64) *cacheEntry {
	e := &cacheEntry{index: index, keys: keys, unsealedAt: now}
	e.usedAt.Store(now)
	e.refs.Store(2) // the cache's and the caller's
	return e
}

// acquire takes a reference; it fails once the entry was dropped and
// zeroed (or is about to be).
func (e *cacheEntry) acquire() bool {
	for {
		r := e.refs.Load()
		if r <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference; the last one zeroes the key.
func (e *cacheEntry) release() {
	if e.refs.Add(-1) == 0 {
		e.keys.Zero()
	}
}

// touch records a use. It writes the shared word at most once per
// millisecond, which is plenty for an expiry measured in seconds, so that
// concurrent requests for one key do not all write the same cache line.
func (e *cacheEntry) touch(now int64) {
	if now-e.usedAt.Load() > 1e6 {
		e.usedAt.Store(now)
	}
}

type cacheKey struct{ enclave, name string }

// keyCache is a node's unsealed key cache. It is consulted only after the
// FSM confirms the record, so a stale entry is never served. Safe for
// concurrent use.
type keyCache struct {
	mu sync.RWMutex
	m  map[cacheKey]*cacheEntry
}

func newKeyCache() *keyCache { return &keyCache{m: map[cacheKey]*cacheEntry{}} }

// get returns the entry for the record at index with a reference taken,
// unless it was unsealed before notBefore (unix nanos).
func (c *keyCache) get(enclave, name string, index uint64, notBefore int64) (*cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[cacheKey{enclave, name}]
	c.mu.RUnlock()
	if !ok || e.index != index || e.unsealedAt < notBefore || !e.acquire() {
		return nil, false
	}
	return e, true
}

// put stores a new entry (created with newCacheEntry), replacing and
// releasing an older one. If a newer record was unsealed concurrently the
// entry is not stored and only the caller's reference remains.
func (c *keyCache) put(enclave, name string, e *cacheEntry) {
	k := cacheKey{enclave, name}
	c.mu.Lock()
	old, ok := c.m[k]
	if ok && old.index > e.index {
		c.mu.Unlock()
		e.release()
		return
	}
	c.m[k] = e
	c.mu.Unlock()
	if ok {
		old.release()
	}
}

// drop removes the entries for which match is true and releases them:
// their keys are zeroed as soon as no request uses them.
func (c *keyCache) drop(match func(k cacheKey, e *cacheEntry) bool) int {
	var dropped []*cacheEntry
	c.mu.Lock()
	for k, e := range c.m {
		if match(k, e) {
			delete(c.m, k)
			dropped = append(dropped, e)
		}
	}
	c.mu.Unlock()
	for _, e := range dropped {
		e.release()
	}
	return len(dropped)
}

func (c *keyCache) evict(enclave, name string) {
	k := cacheKey{enclave, name}
	c.mu.Lock()
	e, ok := c.m[k]
	delete(c.m, k)
	c.mu.Unlock()
	if ok {
		e.release()
	}
}

func (c *keyCache) evictEnclave(enclave string) {
	c.drop(func(k cacheKey, _ *cacheEntry) bool { return k.enclave == enclave })
}

func (c *keyCache) clear() { c.drop(func(cacheKey, *cacheEntry) bool { return true }) }

// len returns how many unsealed keys the node holds.
func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
