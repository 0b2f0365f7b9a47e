package fsm

import (
	"errors"
	"time"
)

// Seal-key rotation: BeginSealRotation records the next seal key, the
// leader re-seals every key record with it in ResealKeys batches, and
// FinishSealRotation makes it the cluster's seal key once no record is
// sealed with another.

// metaSealNext is the meta entry of the next seal key while a rotation is
// in progress.
var metaSealNext = []byte("seal_next")

// ErrSealInUse is returned by FinishSealRotation while a key record is
// still sealed with another seal key than the next one, and by PutKey for
// a record sealed with a retired seal key.
var ErrSealInUse = errors.New("fsm: key records are still sealed with the old seal key")

// BeginSealRotation starts a rotation to the seal key Next. It fails with
// ErrNotFound when the cluster has no seal key yet, and with ErrExists
// when Next is the current key or another rotation is in progress; a
// repeated begin of the rotation in progress changes nothing.
type BeginSealRotation struct {
	Next SealRecord `json:"next"`
}

// ResealedKey is one key record sealed again with the next seal key.
type ResealedKey struct {
	Enclave string `json:"enclave"`
	Name    string `json:"name"`
	// IfIndex is the Index of the record that was re-sealed: a record
	// written since (a reload, a delete and create) is left alone and
	// re-sealed in a later batch.
	IfIndex uint64 `json:"if_index"`
	Sealed  []byte `json:"sealed"`
}

// ResealKeys replaces the sealed material of key records with material
// sealed with the next seal key (Seal, its fingerprint). Records that
// changed since they were read are skipped. It fails with ErrNotFound
// unless a rotation to Seal is in progress.
type ResealKeys struct {
	Seal string        `json:"seal"`
	Keys []ResealedKey `json:"keys"`
}

// FinishSealRotation ends the rotation to the seal key ID at time At: it
// becomes the cluster's seal key, the old one joins Previous. It fails
// with ErrNotFound unless a rotation to ID is in progress, and with
// ErrSealInUse while a key record is sealed with another key.
type FinishSealRotation struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// Type returns TypeBeginSealRotation.
func (BeginSealRotation) Type() Type { return TypeBeginSealRotation }

// Type returns TypeResealKeys.
func (ResealKeys) Type() Type { return TypeResealKeys }

// Type returns TypeFinishSealRotation.
func (FinishSealRotation) Type() Type { return TypeFinishSealRotation }

// firstSeal is the fingerprint a record with an empty Seal was sealed
// with: the cluster's first seal key.
func (s *state) firstSeal() string {
	if s.seal == nil {
		return ""
	}
	if len(s.seal.Previous) > 0 {
		return s.seal.Previous[0]
	}
	return s.seal.ID
}

// sealOf returns the fingerprint of the seal key that sealed r.
func (s *state) sealOf(r KeyRecord) string {
	if r.Seal != "" {
		return r.Seal
	}
	return s.firstSeal()
}

// sealUsable reports whether a new record is sealed with a key the
// cluster still holds: its seal key or, during a rotation, the next one.
// A record sealed with a retired key could never be opened again.
func (s *state) sealUsable(r KeyRecord) bool {
	if s.seal == nil {
		return true
	}
	id := s.sealOf(r)
	return id == s.seal.ID || (s.sealNext != nil && id == s.sealNext.ID)
}

func (s *state) planBeginSealRotation(c BeginSealRotation, ch *change) error {
	switch {
	case s.seal == nil:
		return ErrNotFound
	case s.sealNext != nil && s.sealNext.ID == c.Next.ID:
		return nil
	case s.sealNext != nil, c.Next.ID == s.seal.ID:
		return ErrExists
	}
	next := c.Next
	ch.put(bucketMeta, string(metaSealNext), next)
	ch.do(func() { s.sealNext = &next })
	ch.emit(Event{Kind: SealChanged})
	return nil
}

func (s *state) planResealKeys(c ResealKeys, index uint64, ch *change) error {
	if s.sealNext == nil || s.sealNext.ID != c.Seal {
		return ErrNotFound
	}
	for _, k := range c.Keys {
		r, ok := s.keys[k.Enclave][k.Name]
		if !ok || r.Index != k.IfIndex {
			continue
		}
		r.Sealed, r.Seal, r.Index = k.Sealed, c.Seal, index
		ch.put(bucketKeys, ek(k.Enclave, r.Name), r)
		ch.do(func() { nested(s.keys, k.Enclave)[r.Name] = r })
		ch.emit(Event{Kind: KeyPut, Enclave: k.Enclave, Name: r.Name})
	}
	return nil
}

func (s *state) planFinishSealRotation(c FinishSealRotation, ch *change) error {
	if s.sealNext == nil || s.sealNext.ID != c.ID {
		return ErrNotFound
	}
	for _, keys := range s.keys {
		for _, r := range keys {
			if s.sealOf(r) != c.ID {
				return ErrSealInUse
			}
		}
	}
	seal := *s.sealNext
	seal.RotatedAt = c.At
	seal.Previous = append(append([]string(nil), s.seal.Previous...), s.seal.ID)
	ch.put(bucketMeta, string(metaSeal), seal)
	ch.del(bucketMeta, string(metaSealNext))
	ch.do(func() { s.seal, s.sealNext = &seal, nil })
	ch.emit(Event{Kind: SealChanged})
	return nil
}

// SealNext returns the seal key a rotation in progress moves to.
func (f *FSM) SealNext() (SealRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.sealNext == nil {
		return SealRecord{}, false
	}
	return *f.st.sealNext, true
}

// SealOf returns the fingerprint of the seal key that sealed r (r.Seal,
// or the cluster's first seal key's for an empty r.Seal).
func (f *FSM) SealOf(r KeyRecord) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.sealOf(r)
}

// EnclaveKey is a key record with its enclave.
type EnclaveKey struct {
	Enclave string
	Key     KeyRecord
}

// KeysNotSealedWith returns up to limit key records sealed with another
// seal key than id, and how many there are in all.
func (f *FSM) KeysNotSealedWith(id string, limit int) ([]EnclaveKey, int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []EnclaveKey
	n := 0
	for enclave, keys := range f.st.keys {
		for _, r := range keys {
			if f.st.sealOf(r) == id {
				continue
			}
			n++
			if len(out) < limit {
				out = append(out, EnclaveKey{Enclave: enclave, Key: r})
			}
		}
	}
	return out, n
}
