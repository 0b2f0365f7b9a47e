package enclave

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyraft/keyraft/store"
)

// Start runs the background loops: the keystore health check (every node;
// every HealthInterval, every ProbeInterval while the keystore is offline),
// the expiry of this node's unsealed keys, and, on whichever node leads,
// revalidation of the sealed keys every Cache.Any. Close stops them.
func (s *Service) Start() {
	s.wg.Add(1)
	go s.healthLoop()
	s.startReconciler()
	if s.cfg.Cache.Any > 0 {
		s.loop(s.cfg.Cache.Any, s.revalidate)
	}
	s.loop(s.purgeInterval(), s.purgeDue)
	s.loop(time.Second, func(context.Context) { s.resumeRotation() })
	if every := s.scheduleInterval(); every > 0 {
		s.loop(every, s.rotateDue)
	}
	if every := s.sweepInterval(); every > 0 {
		s.loop(every, func(context.Context) { s.sweep() })
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

// healthLoop checks the keystore's health every HealthInterval, and every
// ProbeInterval while it is offline, so that a keystore that answers again
// is noticed within a probe interval even when no request tries it.
func (s *Service) healthLoop() {
	defer s.wg.Done()
	t := time.NewTimer(s.cfg.Cache.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.checkHealth(context.Background())
		next := s.cfg.Cache.HealthInterval
		if s.offline.Load() {
			next = min(next, s.cfg.Cache.ProbeInterval)
		}
		t.Reset(next)
	}
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
	if st.Latency > 0 {
		s.latency.Store(int64(st.Latency))
	}
	if s.offline.Swap(false) {
		s.log.Info("keystore is back online", "offline_for", time.Duration(s.now().UnixNano()-s.offlineAt.Load()))
	}
}

// allowKeystore is the circuit breaker in front of request-driven keystore
// calls (load, create, delete, list). While the keystore is online every
// call goes through. While it is offline, calls fail fast (a client never
// waits out a keystore timeout), and a request that finds the last probe
// older than ProbeInterval starts one in the background: if the keystore
// answers, it is online again at once, without waiting for the health
// check. Safe for concurrent use.
func (s *Service) allowKeystore() bool {
	if !s.offline.Load() {
		return true
	}
	now := s.now().UnixNano()
	last := s.lastTrial.Load()
	if now-last >= int64(s.cfg.Cache.ProbeInterval) && s.lastTrial.CompareAndSwap(last, now) {
		select {
		case <-s.stop: // closing: no new background work
			return false
		default:
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.checkHealth(context.Background())
		}()
	}
	return false
}

// observeKeystore updates the keystore's health from the outcome of a
// request's keystore call: an answer (success, or a definite "exists" or
// "not found") proves it reachable; an unreachable error marks it offline.
// Other errors (a rejected request, say) say nothing about reachability.
func (s *Service) observeKeystore(err error) {
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists):
		if s.offline.Load() {
			s.recordHealth(store.State{}, nil)
		}
	case errors.Is(err, store.ErrUnreachable):
		s.recordHealth(store.State{}, err)
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
