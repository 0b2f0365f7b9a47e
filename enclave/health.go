package enclave

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/store"
)

// Start runs the background loops: the keystore health check (every node)
// and, on whichever node leads, cache revalidation every Cache.Any and
// eviction of keys unused for Cache.Unused. Close stops them.
func (s *Service) Start() {
	s.loop(s.cfg.Cache.HealthInterval, s.checkHealth)
	s.startReconciler()
	if s.cfg.Cache.Any > 0 {
		s.loop(s.cfg.Cache.Any, s.revalidate)
	}
	if s.cfg.Cache.Unused > 0 {
		s.loop(s.cfg.Cache.Unused/2, s.evictUnused)
		s.loop(s.cfg.Cache.Unused/4, s.reportUse)
	}
}

// reportUse (followers) tells the leader which keys this node used since
// its last report, so the leader does not evict keys that only followers
// use. The leader knows its own use from its cache. Reports carry at most
// maxTouchNames names each.
func (s *Service) reportUse(ctx context.Context) {
	since := s.lastReport.Swap(s.now().UnixNano())
	if s.cfg.Proposer.IsLeader() || s.cfg.Forwarder == nil {
		return
	}
	for enclave, names := range s.cache.usedSince(since) {
		for batch := range slices.Chunk(names, maxTouchNames) {
			if _, err := s.cfg.Forwarder.Forward(ctx, Op{Kind: OpTouchKeys, Enclave: enclave, Names: batch}); err != nil {
				s.log.Debug("could not report key use to the leader", "error", err)
			}
		}
	}
}

func (s *Service) loop(every time.Duration, fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				fn(ctx)
				cancel()
			}
		}
	}()
}

// checkHealth probes the keystore and tracks whether it is offline.
func (s *Service) checkHealth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.cfg.Store.Status(ctx)
	s.recordHealth(st, err)
}

func (s *Service) recordHealth(st store.State, err error) {
	if err != nil {
		if !errors.Is(err, store.ErrUnreachable) {
			err = fmt.Errorf("%w: %w", store.ErrUnreachable, err)
		}
		s.lastErr.Store(&err)
		if !s.offline.Swap(true) {
			s.offlineAt.Store(s.now().UnixNano())
			s.log.Warn("keystore is offline", "error", err)
		}
		return
	}
	s.latency.Store(int64(st.Latency))
	if s.offline.Swap(false) {
		s.log.Info("keystore is back online", "offline_for", time.Duration(s.now().UnixNano()-s.offlineAt.Load()))
	}
}

// KeystoreStatus reports the keystore's latency, or an error wrapping
// store.ErrUnreachable. While the keystore is known to be offline it
// answers at once, without probing (as KES does).
func (s *Service) KeystoreStatus(ctx context.Context) (time.Duration, error) {
	if s.offline.Load() {
		if p := s.lastErr.Load(); p != nil {
			return 0, *p
		}
		return 0, store.ErrUnreachable
	}
	st, err := s.cfg.Store.Status(ctx)
	if err != nil && ctx.Err() == nil {
		s.recordHealth(st, err)
		return 0, *s.lastErr.Load()
	}
	if err != nil {
		return 0, err
	}
	s.latency.Store(int64(st.Latency))
	return st.Latency, nil
}

// Offline reports whether the last keystore health check failed.
func (s *Service) Offline() bool { return s.offline.Load() }

// revalidate (leader only) evicts, cluster-wide, cached keys that are gone
// from the keystore. One List call covers all keys (for AWS: one
// ListSecrets page per 100 secrets).
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
	names, err := s.cfg.Store.List(ctx, "")
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
		s.log.Warn("keystore unreachable: dropping the key cache", "since_last_listing", since, "error", err)
		s.evictWhere(ctx, func(string, fsm.KeyRecord) bool { return true })
		return
	}
	s.lastListed.Store(now)
	s.failedListings.Store(0)
	if s.offline.Swap(false) { // the listing proved the keystore answers again
		s.log.Info("keystore is back online", "offline_for", time.Duration(s.now().UnixNano()-s.offlineAt.Load()))
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	s.evictWhere(ctx, func(enclave string, r fsm.KeyRecord) bool {
		sn, err := storeName(enclave, r.Name)
		return err != nil || !present[sn]
	})
}

// evictUnused (leader only) evicts keys no node used within Cache.Unused.
func (s *Service) evictUnused(ctx context.Context) {
	if !s.cfg.Proposer.IsLeader() {
		return
	}
	cutoff := s.now().Add(-s.cfg.Cache.Unused)
	s.evictWhere(ctx, func(enclave string, r fsm.KeyRecord) bool {
		last := r.UsedAt
		if local := s.cache.lastUse(enclave, r.Name); local > 0 && time.Unix(0, local).After(last) {
			last = time.Unix(0, local)
		}
		return last.Before(cutoff)
	})
}

func (s *Service) evictWhere(ctx context.Context, drop func(enclave string, r fsm.KeyRecord) bool) {
	enclaves := []string{DefaultEnclave}
	for _, e := range s.cfg.FSM.Enclaves() {
		enclaves = append(enclaves, e.Name)
	}
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
		s.log.Debug("evicted cached keys", "enclave", enclave, "count", len(names))
	}
}
