package enclave

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// A restored snapshot may be older than the keystore: its key records may
// name keys deleted since, or hold material replaced since (a key deleted
// and created again). The records stay unconfirmed (fsm.RestoreMarker)
// until the leader has compared every one with the keystore and applied
// the outcome in one fsm.ReconcileKeys; until then no node serves them.

// errReconciling answers requests for an unconfirmed key.
var errReconciling = kes.Error{Code: 503, Message: "key state is being reconciled with the keystore: try again"}

const (
	// reconcileWait is how long a request for an unconfirmed key waits for
	// the reconciliation before it answers errReconciling.
	reconcileWait = 2 * time.Second
	// reconcileInterval is how often the leader looks for a pending
	// restore (after a restore, or after it gained leadership).
	reconcileInterval = 500 * time.Millisecond
	// reconcileMaxBackoff bounds the pause after a failed reconciliation.
	reconcileMaxBackoff = 30 * time.Second
	// reconcileTimeout bounds one reconciliation (one keystore listing and
	// one read per restored key).
	reconcileTimeout = 5 * time.Minute
)

// keyRecord returns the FSM record a request for a key is served from,
// loading the key from the keystore (through the leader) if the FSM has
// none. A record restored from a snapshot and not yet reconciled with the
// keystore is not served: the request waits up to reconcileWait for the
// reconciliation, then answers errReconciling (503).
func (s *Service) keyRecord(ctx context.Context, enclave, name string) (fsm.KeyRecord, error) {
	for waited := false; ; waited = true {
		rec, ok, unconfirmed := s.cfg.FSM.ServableKey(enclave, name)
		if !ok {
			if s.pendingDeletion(enclave, name) {
				return fsm.KeyRecord{}, kes.ErrKeyNotFound
			}
			if err := s.loadKey(ctx, enclave, name); err != nil {
				return fsm.KeyRecord{}, err
			}
			if rec, ok, unconfirmed = s.cfg.FSM.ServableKey(enclave, name); !ok {
				return fsm.KeyRecord{}, kes.ErrKeyNotFound
			}
		}
		if !unconfirmed {
			return rec, nil
		}
		if waited {
			return fsm.KeyRecord{}, errReconciling
		}
		wctx, cancel := context.WithTimeout(ctx, reconcileWait)
		err := s.cfg.FSM.WaitRestoreReconciled(wctx)
		cancel()
		if err != nil {
			return fsm.KeyRecord{}, errReconciling
		}
		// Reconciled: the record is now confirmed, replaced or gone; look
		// again.
	}
}

// ReconcileRestored reconciles the key records of a restored snapshot with
// the keystore, if a restore is pending (else it returns nil at once). It
// lists the keystore once and reads every restored key: a record whose key
// is gone is evicted, a record whose material differs from the keystore's
// is replaced by the keystore's value, sealed again; the outcome and the
// end of the restore are applied in one Raft command, so every node starts
// serving the restored keys at the same index. It must run on the leader
// (else an error wrapping ErrNotLeader); with the keystore unreachable it
// returns the keystore's error and the keys stay unavailable. Concurrent
// calls share one run; a run made stale by a newer restore changes nothing
// and returns nil (the newer restore is reconciled next).
func (s *Service) ReconcileRestored(ctx context.Context) error {
	_, err, _ := s.reconciling.Do("reconcile", func() (any, error) {
		return nil, s.reconcileRestored(ctx)
	})
	return err
}

func (s *Service) reconcileRestored(ctx context.Context) error {
	m, ok := s.cfg.FSM.RestorePending()
	if !ok {
		return nil
	}
	if !s.cfg.Proposer.IsLeader() {
		return fmt.Errorf("enclave: reconcile restored keys: %w", ErrNotLeader)
	}
	sl := s.seal.Load()
	if sl == nil {
		return fmt.Errorf("enclave: reconcile restored keys: %w", ErrSealed)
	}
	entries, err := store.ListVersions(ctx, s.cfg.Store, "")
	if err != nil {
		return fmt.Errorf("enclave: reconcile restored keys: list keystore: %w", err)
	}
	present := make(map[string]string, len(entries)) // name -> version
	for _, e := range entries {
		present[e.Name] = e.Version
	}
	cmd := fsm.ReconcileKeys{Restore: m.ID}
	kept := 0
	enclaves := s.enclaveNames()
	for _, enclave := range enclaves {
		for _, rec := range s.cfg.FSM.Keys(enclave, "") {
			if rec.Index > m.Applied {
				continue // written after the restore: confirmed
			}
			evict, reload, err := s.compareRestored(ctx, sl, enclave, rec, present)
			switch {
			case err != nil:
				return fmt.Errorf("enclave: reconcile restored key %q of enclave %q: %w", rec.Name, enclave, err)
			case evict:
				cmd.Evict = append(cmd.Evict, fsm.KeyRef{Enclave: enclave, Name: rec.Name})
			case reload != nil:
				cmd.Reload = append(cmd.Reload, *reload)
			default:
				kept++
			}
		}
	}
	if _, err := s.propose(ctx, cmd); errors.Is(err, fsm.ErrNotFound) {
		return nil // a newer restore replaced this one, or it is done
	} else if err != nil {
		return fmt.Errorf("enclave: reconcile restored keys: %w", err)
	}
	s.log.Named("reconcile").Info("reconciled the restored keys with the keystore; serving them again",
		"restore", m.ID, "kept", kept, "evicted", len(cmd.Evict), "reloaded", len(cmd.Reload))
	return nil
}

// compareRestored decides what happens to one restored record: evict it
// (its key is gone from the keystore, or the keystore's value is
// unreadable), reload it (the keystore holds other material; reload is the
// keystore's value sealed again, as a load would seal it), or keep it
// (neither). A record whose keystore version the listing shows unchanged
// is kept without reading the keystore. An error means the keystore could
// not be read.
func (s *Service) compareRestored(ctx context.Context, sl *sealer, enclave string, rec fsm.KeyRecord, present map[string]string) (evict bool, reload *fsm.ReloadKey, err error) {
	sn, err := storeName(enclave, rec.Name)
	if err != nil {
		return true, nil, nil
	}
	version, listed := present[sn]
	if !listed {
		return true, nil, nil
	}
	versions, err := s.discoverVersions(ctx, enclave, rec.Name, present)
	if err != nil {
		return false, nil, err
	}
	sameVers := rec.Carries(versions)
	if version != "" && version == rec.Version && sameVers {
		return false, nil, nil
	}
	value, version, err := store.GetVersion(ctx, s.cfg.Store, sn)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	defer clear(value)
	if cur, err := s.openRecord(ctx, enclave, rec); err == nil {
		same := subtle.ConstantTimeCompare(firstValue(cur), value) == 1 && sameVers
		clear(cur)
		if same {
			return false, nil, nil
		}
	}
	kv, err := crypto.ParseKeyVersion(value)
	if err != nil {
		s.log.Named("reconcile").Error("keystore holds an unreadable key: evicting its restored record",
			"enclave", enclave, "key", rec.Name, "error", err)
		return true, nil, nil
	}
	defer kv.Zero()
	reloaded, err := s.keystoreRecordWith(ctx, sl, enclave, rec.Name, kv, value, versions)
	if err != nil {
		return false, nil, err
	}
	reloaded.Version = version
	return false, &fsm.ReloadKey{Enclave: enclave, Key: reloaded}, nil
}

// startReconciler runs ReconcileRestored whenever this node leads while a
// restore is pending (checked every reconcileInterval): after a restore
// whose own reconciliation did not finish, and after a leader change that
// interrupted one. Failures are retried with backoff. Close stops it.
func (s *Service) startReconciler() {
	log := s.log.Named("reconcile")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(reconcileInterval)
		defer t.Stop()
		var backoff time.Duration
		var next time.Time
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				if now.Before(next) {
					continue
				}
				if through := s.cfg.FSM.HeldBack(); through > 0 {
					if err := s.requestMark(through); err != nil {
						log.Warn("could not have the recovered key records reconciled; they stay unavailable", "error", err)
					}
				}
				if !s.cfg.Proposer.IsLeader() {
					continue
				}
			}
			if _, ok := s.cfg.FSM.RestorePending(); !ok {
				backoff = 0
				continue
			}
			err := s.reconcileUntilStopped()
			if err == nil {
				backoff = 0
				continue
			}
			backoff = min(max(2*backoff, time.Second), reconcileMaxBackoff)
			next = time.Now().Add(backoff)
			log.Warn("could not reconcile the restored keys with the keystore; they stay unavailable", "retry_in", backoff, "error", err)
		}
	}()
}

// requestMark asks the leader (through the Forwarder, or itself) to mark
// the key records this node holds back for reconciliation.
func (s *Service) requestMark(through uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), reconcileInterval*4)
	defer cancel()
	return s.write(ctx, Op{Kind: OpMarkRecovered, Enclave: DefaultEnclave, Through: through})
}

// execMarkRecovered (leader) marks every key record at or below
// max(op.Through, this node's applied index) unconfirmed, unless a pending
// restore marker already covers op.Through. The barrier first makes sure
// the leader's state holds every committed record.
func (s *Service) execMarkRecovered(ctx context.Context, op Op) (uint64, error) {
	if err := s.barrier(ctx); err != nil {
		return 0, err
	}
	if m, ok := s.cfg.FSM.RestorePending(); ok && m.Applied >= op.Through {
		return s.cfg.FSM.AppliedIndex(), nil
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return 0, internal("mark recovered: %w", err)
	}
	m := fsm.RestoreMarker{ID: hex.EncodeToString(nonce[:]), Applied: max(op.Through, s.cfg.FSM.AppliedIndex())}
	s.log.Named("reconcile").Warn("a node recovered from a lost quorum: reconciling every key record with the keystore before serving it",
		"through_index", m.Applied)
	return s.propose(ctx, fsm.MarkRestore{Marker: m})
}

// reconcileUntilStopped runs ReconcileRestored bounded by reconcileTimeout
// and cancelled by Close.
func (s *Service) reconcileUntilStopped() error {
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-done:
		}
	}()
	return s.ReconcileRestored(ctx)
}
