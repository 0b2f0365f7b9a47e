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

// SealKey returns a copy of the seal key, for handing to a joining member
// over the authenticated cluster channel. It returns ErrSealed if unknown.
func (s *Service) SealKey() ([]byte, error) {
	sl := s.seal.Load()
	if sl == nil {
		return nil, ErrSealed
	}
	return append([]byte(nil), sl.key...), nil
}

// Unsealed reports whether the seal key is loaded.
func (s *Service) Unsealed() bool { return s.seal.Load() != nil }

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
	return s.install(sl)
}

// Unseal loads the seal key recorded by the cluster: from the keystore,
// or, if that fails and fromPeer is not nil, from a healthy peer. The key
// must match the cluster's fingerprint.
func (s *Service) Unseal(ctx context.Context, fromPeer func(context.Context) ([]byte, error)) error {
	key, err := s.cfg.Store.Get(ctx, SealName)
	if err != nil && fromPeer != nil {
		s.log.Warn("keystore did not give the seal key, asking a peer", "error", err)
		key, err = fromPeer(ctx)
	}
	if err != nil {
		return fmt.Errorf("enclave: load seal key: %w", err)
	}
	defer clear(key)
	sl, err := newSealer(key)
	if err != nil {
		return err
	}
	return s.install(sl)
}

func (s *Service) install(sl *sealer) error {
	if rec, ok := s.cfg.FSM.Seal(); ok {
		if err := sl.verify(rec); err != nil {
			sl.zero()
			return err
		}
	}
	if old := s.seal.Swap(sl); old != nil {
		old.zero()
	}
	return nil
}
