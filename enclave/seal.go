package enclave

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/store"
)

// SealName is the keystore entry holding the cluster seal key. It is not a
// valid key name, so no listing shows it and no key can collide with it.
const SealName = "keyraft.seal"

// Errors of the seal lifecycle.
var (
	// ErrSealed is returned by key operations before the seal key is known.
	ErrSealed = errors.New("enclave: the seal key is not loaded")
	// ErrWrongSealKey is returned when the keystore's seal key does not
	// match the one the cluster recorded.
	ErrWrongSealKey = errors.New("enclave: seal key does not match the cluster's")
)

var sealCheck = []byte("keyraft seal check v1")

// sealer encrypts cached key material with the cluster seal key.
type sealer struct {
	key  []byte
	aead cipher.AEAD
	id   string
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: seal key must be 32 bytes", ErrWrongSealKey)
	}
	k := append([]byte(nil), key...)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("keyraft seal id\x00"), k...))
	return &sealer{key: k, aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

func (s *sealer) zero() { clear(s.key) }

func sealAD(enclave, name string) []byte {
	return []byte("keyraft/v1\x00" + enclave + "\x00" + name + "\x00" + "0")
}

// sealBytes encrypts plaintext; the result is nonce || ciphertext.
func (s *sealer) sealBytes(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (s *sealer) openBytes(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("enclave: sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

func (s *sealer) record() (fsm.SealRecord, error) {
	check, err := s.sealBytes(sealCheck, []byte(s.id))
	if err != nil {
		return fsm.SealRecord{}, err
	}
	return fsm.SealRecord{ID: s.id, Check: check}, nil
}

func (s *sealer) verify(r fsm.SealRecord) error {
	if r.ID != s.id {
		return ErrWrongSealKey
	}
	if _, err := s.openBytes(r.Check, []byte(s.id)); err != nil {
		return ErrWrongSealKey
	}
	return nil
}

// SealKey returns a copy of the seal key with fingerprint id ("" for the
// one new records are sealed with), for handing to a member over the
// authenticated cluster channel. It returns ErrSealed if this node does
// not hold it.
func (s *Service) SealKey(id string) ([]byte, error) {
	sl := s.seal.Load()
	if id != "" && (sl == nil || sl.id != id) {
		sl = s.ring.get(id)
	}
	if sl == nil {
		return nil, ErrSealed
	}
	return append([]byte(nil), sl.key...), nil
}

// Unsealed reports whether the seal key is loaded.
func (s *Service) Unsealed() bool { return s.seal.Load() != nil }

// SealFromPeer asks a peer (the leader) for the seal key with a
// fingerprint.
type SealFromPeer func(ctx context.Context, id string) ([]byte, error)

// Bootstrap loads the cluster's seal key, creating it on a brand-new
// cluster. On the leader of a cluster with no seal record it reads the
// keystore's seal entry, creating 256 random bits there if missing, and
// records its fingerprint through Raft. Otherwise it behaves like Unseal.
func (s *Service) Bootstrap(ctx context.Context) error {
	if _, ok := s.cfg.FSM.Seal(); ok || !s.cfg.Proposer.IsLeader() {
		return s.Unseal(ctx, nil)
	}
	key, err := s.cfg.Store.Get(ctx, SealName)
	if errors.Is(err, store.ErrNotFound) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		err = s.cfg.Store.Create(ctx, SealName, key)
		if errors.Is(err, store.ErrExists) { // another node won the race
			key, err = s.cfg.Store.Get(ctx, SealName)
		}
	}
	if err != nil {
		return fmt.Errorf("enclave: load seal key from keystore: %w", err)
	}
	defer clear(key)
	sl, err := newSealer(key)
	if err != nil {
		return err
	}
	rec, err := sl.record()
	if err != nil {
		return err
	}
	if _, err := s.cfg.Proposer.Apply(ctx, fsm.SetSeal{Seal: rec}); err != nil && !errors.Is(err, fsm.ErrExists) {
		return fmt.Errorf("enclave: record seal key: %w", err)
	}
	if cur, ok := s.cfg.FSM.Seal(); ok {
		if err := sl.verify(cur); err != nil {
			sl.zero()
			return err
		}
	}
	s.ring.put(sl)
	s.seal.Store(sl)
	return nil
}

// Unseal loads the seal keys the cluster's state names (its seal key and,
// during a rotation, the next one): each from the keystore or, if that
// fails and fromPeer is not nil, from a peer. Every key must match its
// recorded fingerprint. fromPeer is kept for keys needed later (a rotation
// that begins while this node runs).
func (s *Service) Unseal(ctx context.Context, fromPeer SealFromPeer) error {
	if fromPeer != nil {
		s.fromPeer.Store(&fromPeer)
	}
	rec, ok := s.cfg.FSM.Seal()
	if !ok {
		return fmt.Errorf("enclave: load seal key: %w", ErrSealed)
	}
	sl, err := s.readSeal(ctx, rec)
	if err != nil {
		return err
	}
	s.seal.Store(sl)
	if next, ok := s.cfg.FSM.SealNext(); ok {
		if nsl, err := s.loadSeal(ctx, next); err == nil && s.cfg.Proposer.IsLeader() {
			s.seal.Store(nsl)
		} else if err != nil {
			s.log.Warn("could not load the next seal key yet; it is loaded when a record needs it", "seal", next.ID, "error", err)
		}
	}
	return nil
}

// sealEntry is the keystore entry of a seal key.
func sealEntry(r fsm.SealRecord) string {
	if r.Entry != "" {
		return r.Entry
	}
	return SealName
}

// loadSeal returns the seal key of a seal record from the ring, else
// loads it into the ring: from the keystore, else from a peer. It returns ErrWrongSealKey if the key found
// does not match the record.
func (s *Service) loadSeal(ctx context.Context, r fsm.SealRecord) (*sealer, error) {
	if sl := s.ring.get(r.ID); sl != nil {
		return sl, nil
	}
	return s.readSeal(ctx, r)
}

// readSeal is loadSeal without looking at the ring first.
func (s *Service) readSeal(ctx context.Context, r fsm.SealRecord) (*sealer, error) {
	v, err, _ := s.sealLoads.Do(r.ID, func() (any, error) {
		key, err := s.cfg.Store.Get(ctx, sealEntry(r))
		if fp := s.fromPeer.Load(); err != nil && fp != nil {
			s.log.Warn("keystore did not give the seal key, asking a peer", "seal", r.ID, "error", err)
			key, err = (*fp)(ctx, r.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("enclave: load seal key %s: %w", r.ID, err)
		}
		defer clear(key)
		sl, err := newSealer(key)
		if err != nil {
			return nil, err
		}
		if err := sl.verify(r); err != nil {
			sl.zero()
			return nil, err
		}
		s.ring.put(sl)
		return sl, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sealer), nil
}

// opener returns the seal key that opens a record, loading it if this
// node does not hold it yet (a record re-sealed by a rotation that began
// a moment ago): only then does it touch the keystore or a peer.
func (s *Service) opener(ctx context.Context, rec fsm.KeyRecord) (*sealer, error) {
	sl := s.seal.Load()
	if sl == nil {
		return nil, errSealed
	}
	id := rec.Seal
	if id == "" {
		id = s.cfg.FSM.SealOf(rec)
	}
	if sl.id == id {
		return sl, nil
	}
	if o := s.ring.get(id); o != nil {
		return o, nil
	}
	for _, r := range s.sealRecords() {
		if r.ID == id {
			return s.loadSeal(ctx, r)
		}
	}
	return nil, fmt.Errorf("%w: record sealed with %s, which the cluster no longer names", ErrWrongSealKey, id)
}

// openRecord unseals a record's keystore value; the caller clears it.
func (s *Service) openRecord(ctx context.Context, enclave string, rec fsm.KeyRecord) ([]byte, error) {
	sl, err := s.opener(ctx, rec)
	if err != nil {
		return nil, err
	}
	return sl.openBytes(rec.Sealed, sealAD(enclave, rec.Name))
}

// sealRecords returns the seal records the state names: the seal key and,
// during a rotation, the next one.
func (s *Service) sealRecords() []fsm.SealRecord {
	var out []fsm.SealRecord
	if r, ok := s.cfg.FSM.Seal(); ok {
		out = append(out, r)
	}
	if r, ok := s.cfg.FSM.SealNext(); ok {
		out = append(out, r)
	}
	return out
}

// syncSeals follows a SealChanged event: the leader seals with the next
// key while a rotation runs; every node drops (and zeroes) the keys the
// state no longer names. Keys it names but this node lacks are loaded
// when a record needs them (opener).
func (s *Service) syncSeals() {
	s.sealSync.Lock()
	defer s.sealSync.Unlock()
	recs := s.sealRecords()
	if len(recs) == 0 {
		return
	}
	want := recs[len(recs)-1] // the next key during a rotation
	if sl := s.ring.get(want.ID); sl != nil {
		s.seal.Store(sl)
	} else if len(recs) == 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sl, err := s.loadSeal(ctx, want)
		cancel()
		if err != nil {
			s.log.Error("could not load the cluster's seal key after a rotation", "seal", want.ID, "error", err)
			return
		}
		s.seal.Store(sl)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	if n := s.ring.keepOnly(ids); n > 0 {
		s.log.Info("dropped retired seal keys", "count", n, "seal", s.seal.Load().id)
	}
}
