package enclave

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/store"
)

// maxReloadsPerPass bounds the keystore reads one revalidation makes for
// keys whose stored value changed (or whose version was never recorded,
// e.g. records written by an older Keyraft): the rest wait for the next
// pass, so an upgrade or a mass rotation cannot burst into the keystore's
// rate limit.
const maxReloadsPerPass = 100

// revalidate (leader only) checks the sealed keys against one keystore
// listing (for AWS: ListSecrets pages of 100, no GetSecretValue). It
// evicts, cluster-wide, keys gone from the keystore and reloads keys whose
// listed version differs from the one that was sealed.
//
// A failed listing evicts nothing by itself: the sealed keys keep serving
// while the last successful revalidation is at most max(Cache.Any,
// Cache.Offline) old. Only when a second consecutive listing fails past
// that bound are they dropped, so a revoked or lost root stops serving in
// bounded time while one throttled or timed-out call costs nothing.
func (s *Service) revalidate(ctx context.Context) {
	if !s.cfg.Proposer.IsLeader() {
		return
	}
	now := s.now().UnixNano()
	s.lastListed.CompareAndSwap(0, now)
	// Every record applied before the listing starts is in the keystore
	// before it (keystore first, then Raft), so the listing shows it; a
	// record applied later (a create during the listing) may be missing
	// from it and is left for the next pass.
	listedFrom := s.cfg.FSM.AppliedIndex()
	entries, err := store.ListVersions(ctx, s.cfg.Store, "")
	if err != nil {
		s.recordHealth(store.State{}, err)
		failed := s.failedListings.Add(1)
		grace := max(s.cfg.Cache.Any, s.cfg.Cache.Offline)
		since := time.Duration(now - s.lastListed.Load())
		if failed < 2 || since <= grace {
			s.log.Warn("keystore listing failed: the sealed keys keep serving",
				"failed_listings", failed, "since_last_listing", since, "bound", grace, "error", err)
			return
		}
		s.log.Warn("keystore unreachable: dropping the sealed keys", "since_last_listing", since, "error", err)
		s.evictWhere(ctx, func(string, fsm.KeyRecord) bool { return true })
		return
	}
	s.lastListed.Store(now)
	s.failedListings.Store(0)
	s.observeKeystore(nil) // the listing proved the keystore answers
	version := make(map[string]string, len(entries))
	for _, e := range entries {
		version[e.Name] = e.Version
	}
	type stale struct {
		enclave string
		rec     fsm.KeyRecord
	}
	var changed []stale
	s.evictWhere(ctx, func(enclave string, r fsm.KeyRecord) bool {
		if r.Index > listedFrom {
			return false
		}
		sn, err := storeName(enclave, r.Name)
		if err != nil {
			return true
		}
		v, ok := version[sn]
		if ok && v != "" && v != r.Version && len(changed) < maxReloadsPerPass {
			changed = append(changed, stale{enclave, r})
		}
		return !ok
	})
	for _, c := range changed {
		if err := s.reload(ctx, c.enclave, c.rec); err != nil {
			s.log.Warn("could not reload a key whose keystore version changed", "enclave", c.enclave, "key", c.rec.Name, "error", err)
		}
	}
}

// reload (leader) reads a key whose listed keystore version differs from
// the sealed record's and replaces the record: with the keystore's new
// value if it changed behind the cluster's back, else with the same value
// and the new version. The replacement applies only over the record it
// was decided on (PutKey.IfIndex), so a key deleted or re-created in the
// meantime stays as it is. A key gone from the keystore is left to the
// next listing.
func (s *Service) reload(ctx context.Context, enclave string, rec fsm.KeyRecord) error {
	sl := s.seal.Load()
	if sl == nil {
		return ErrSealed
	}
	unlock := s.locks.shared(enclave)
	defer unlock()
	sn, err := storeName(enclave, rec.Name)
	if err != nil {
		return err
	}
	value, version, err := store.GetVersion(ctx, s.cfg.Store, sn)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer clear(value)
	next := rec
	next.Version = version
	cur, err := s.openRecord(ctx, enclave, rec)
	same := err == nil && subtle.ConstantTimeCompare(firstValue(cur), value) == 1
	clear(cur)
	if !same {
		kv, err := crypto.ParseKeyVersion(value)
		if err != nil {
			return internal("keystore holds an unreadable key: %w", err)
		}
		defer kv.Zero()
		if next, err = s.keystoreRecord(ctx, sl, enclave, rec.Name, kv, value); err != nil {
			return err
		}
		next.Version = version
	}
	_, err = s.propose(ctx, fsm.PutKey{Enclave: enclave, Key: next, IfIndex: rec.Index})
	if errors.Is(err, fsm.ErrNotFound) {
		return nil // deleted or replaced since the listing
	}
	if err == nil && !same {
		s.log.Info("reloaded a key whose value changed in the keystore", "enclave", enclave, "key", rec.Name)
	}
	return err
}

// evictWhere (leader) removes, cluster-wide, the sealed records for which
// drop is true: one apply per enclave.
func (s *Service) evictWhere(ctx context.Context, drop func(enclave string, r fsm.KeyRecord) bool) {
	enclaves := s.enclaveNames()
	for _, enclave := range enclaves {
		var names []string
		for _, r := range s.cfg.FSM.Keys(enclave, "") {
			if drop(enclave, r) {
				names = append(names, r.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: enclave, Names: names}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			s.log.Warn("cache eviction failed", "enclave", enclave, "error", err)
			continue
		}
		s.log.Debug("evicted sealed keys", "enclave", enclave, "count", len(names))
	}
}

// sweepInterval is how often sweep runs: often enough that no unsealed key
// outlives Cache.Unused or Cache.Any by more than half of it.
func (s *Service) sweepInterval() time.Duration {
	var every time.Duration
	for _, d := range []time.Duration{s.cfg.Cache.Unused, s.cfg.Cache.Any} {
		if d > 0 && (every == 0 || d/2 < every) {
			every = d / 2
		}
	}
	return every
}

// sweep (every node) drops and zeroes this node's unsealed keys that were
// not used for Cache.Unused or were unsealed more than Cache.Any ago. The
// sealed records stay in the FSM: the next request unseals again, with no
// keystore call, Raft command or disk I/O.
func (s *Service) sweep() int {
	now := s.now().UnixNano()
	unused, anyAge := int64(s.cfg.Cache.Unused), int64(s.cfg.Cache.Any)
	n := s.cache.drop(func(_ cacheKey, e *cacheEntry) bool {
		return (unused > 0 && now-e.usedAt.Load() > unused) || (anyAge > 0 && now-e.unsealedAt > anyAge)
	})
	if n > 0 {
		s.log.Trace("dropped unsealed keys", "count", n)
	}
	return n
}
