package enclave

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/store"
)

// Seal-key rotation (keyraft cluster rotate-seal). The leader writes a new
// seal key to the keystore (entry "keyraft.seal.<fingerprint>"), records
// it (fsm.BeginSealRotation) and from then on seals new records with it;
// it re-seals every existing record in batches (fsm.ResealKeys), finishes
// (fsm.FinishSealRotation) once none is sealed with the old key, waits
// until every member applied that, and removes the old key from the
// keystore. Nodes hold both keys meanwhile, so no request fails. The state
// of a rotation is replicated: a new leader resumes an interrupted one.

// resealBatch is how many records one ResealKeys re-seals.
const resealBatch = 256

// SealStatus describes the cluster's seal key and a rotation in progress.
type SealStatus struct {
	ID        string    `json:"id"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// RotatingTo is the fingerprint of the key a rotation in progress
	// moves to, and Remaining how many records are still to be re-sealed.
	RotatingTo string `json:"rotating_to,omitempty"`
	Remaining  int    `json:"remaining,omitempty"`
}

// SealStatus returns this node's view of the seal key and rotation.
func (s *Service) SealStatus() SealStatus {
	var st SealStatus
	if r, ok := s.cfg.FSM.Seal(); ok {
		st.ID, st.RotatedAt = r.ID, r.RotatedAt
	}
	if r, ok := s.cfg.FSM.SealNext(); ok {
		st.RotatingTo = r.ID
		_, st.Remaining = s.cfg.FSM.KeysNotSealedWith(r.ID, 0)
	}
	return st
}

// RotateSeal starts a seal-key rotation, or joins the one in progress, and
// returns at once with its status; the leader re-seals in the background
// (see resumeRotation). It is a write: it runs on the leader.
func (s *Service) RotateSeal(ctx context.Context, identity string) (SealStatus, error) {
	if err := s.write(ctx, Op{Kind: OpRotateSeal, Enclave: DefaultEnclave, Identity: identity}); err != nil {
		return SealStatus{}, err
	}
	return s.SealStatus(), nil
}

// execRotateSeal (leader) begins a rotation unless one is in progress,
// and starts re-sealing.
func (s *Service) execRotateSeal(ctx context.Context, op Op) (uint64, error) {
	if _, ok := s.cfg.FSM.SealNext(); ok {
		s.resumeRotation()
		return s.cfg.FSM.AppliedIndex(), nil
	}
	if s.seal.Load() == nil {
		return 0, errSealed
	}
	key := make([]byte, 32)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return 0, internal("seal key: %w", err)
	}
	sl, err := newSealer(key)
	if err != nil {
		return 0, err
	}
	rec, err := sl.record()
	if err != nil {
		sl.zero()
		return 0, internal("seal record: %w", err)
	}
	rec.Entry = SealName + "." + sl.id
	if err := s.cfg.Store.Create(ctx, rec.Entry, key); err != nil {
		sl.zero()
		s.log.Error("failed to write a new seal key to the keystore", "error", err)
		return 0, errCreateFailed
	}
	s.ring.put(sl)
	idx, err := s.propose(ctx, fsm.BeginSealRotation{Next: rec})
	if err != nil {
		return idx, err
	}
	s.log.Info("seal-key rotation begins", "from", s.SealStatus().ID, "to", rec.ID, "by", op.Identity)
	if s.cfg.Audit != nil {
		s.cfg.Audit(DefaultEnclave, "/v1/cluster/seal/rotate/begin", op.Identity)
	}
	s.resumeRotation()
	return idx, nil
}

// resumeRotation starts the re-sealing on the leader if a rotation is in
// progress and no re-sealing runs. The leader's loop calls it every
// second, so an interrupted rotation resumes on whichever node leads.
func (s *Service) resumeRotation() {
	if !s.cfg.Proposer.IsLeader() || !s.rotating.CompareAndSwap(false, true) {
		return
	}
	if _, ok := s.cfg.FSM.SealNext(); !ok {
		s.rotating.Store(false)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.rotating.Store(false)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := s.rotateSeal(ctx); err != nil {
			s.log.Warn("seal-key rotation paused; it resumes on the leader", "error", err)
		}
	}()
}

// rotateSeal re-seals every record with the next seal key and finishes
// the rotation. It stops with an error when this node loses leadership.
func (s *Service) rotateSeal(ctx context.Context) error {
	next, ok := s.cfg.FSM.SealNext()
	if !ok {
		return nil
	}
	old, _ := s.cfg.FSM.Seal()
	nsl, err := s.loadSeal(ctx, next)
	if err != nil {
		return err
	}
	s.seal.Store(nsl) // every record sealed from now on uses the next key
	start := time.Now()
	resealed := 0
	for {
		if !s.cfg.Proposer.IsLeader() {
			return ErrNotLeader
		}
		batch, remaining := s.cfg.FSM.KeysNotSealedWith(next.ID, resealBatch)
		if remaining == 0 {
			idx, err := s.propose(ctx, fsm.FinishSealRotation{ID: next.ID, At: s.now().UTC()})
			if errors.Is(err, fsm.ErrSealInUse) {
				continue // a record sealed with the old key slipped in: once more
			}
			if err != nil {
				return err
			}
			s.settle(ctx, idx)
			s.retireSeal(ctx, old)
			s.log.Info("seal-key rotation finished", "seal", next.ID, "records", resealed, "took", time.Since(start).Round(time.Millisecond))
			if s.cfg.Audit != nil {
				s.cfg.Audit(DefaultEnclave, "/v1/cluster/seal/rotate/finish", PurgeIdentity)
			}
			return nil
		}
		cmd := fsm.ResealKeys{Seal: next.ID, Keys: make([]fsm.ResealedKey, 0, len(batch))}
		for _, k := range batch {
			sealed, err := s.reseal(ctx, nsl, k)
			if err != nil {
				return fmt.Errorf("re-seal key %q of enclave %q: %w", k.Key.Name, k.Enclave, err)
			}
			cmd.Keys = append(cmd.Keys, fsm.ResealedKey{Enclave: k.Enclave, Name: k.Key.Name, IfIndex: k.Key.Index, Sealed: sealed})
		}
		if _, err := s.propose(ctx, cmd); err != nil {
			return err
		}
		resealed += len(cmd.Keys)
	}
}

// reseal returns a record's keystore value sealed with nsl: unsealed from
// the record, or, if no key this node holds opens it (a record restored
// from a backup sealed with a retired key), read from the keystore.
func (s *Service) reseal(ctx context.Context, nsl *sealer, k fsm.EnclaveKey) ([]byte, error) {
	plain, err := s.openRecord(ctx, k.Enclave, k.Key)
	if err != nil {
		sn, serr := storeName(k.Enclave, k.Key.Name)
		if serr != nil {
			return nil, serr
		}
		if plain, err = s.cfg.Store.Get(ctx, sn); err != nil {
			return nil, err
		}
	}
	defer clear(plain)
	return nsl.sealBytes(plain, sealAD(k.Enclave, k.Key.Name))
}

// retireSeal removes a retired seal key from the keystore, best effort.
func (s *Service) retireSeal(ctx context.Context, old fsm.SealRecord) {
	err := s.cfg.Store.Delete(ctx, sealEntry(old))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("could not remove the retired seal key from the keystore; remove it by hand", "entry", sealEntry(old), "error", err)
		return
	}
	s.log.Info("retired seal key removed from the keystore", "seal", old.ID, "entry", sealEntry(old))
}
