package enclave

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// Key versions (Keyraft; issue 12). RotateKey adds a version: generate and
// encrypt use the newest, decrypt finds the version a ciphertext was made
// with (crypto.Versions), so nothing has to be re-encrypted. Version 1 is
// the key's own keystore entry, as KES stores it; version n ≥ 2 is a KES
// key value in the entry versionEntry names. The versions are registered
// in the FSM (fsm.KeyVersions) and sealed together in the key's record.

var (
	errVersionRetired = kes.Error{Code: http.StatusBadRequest, Message: "decryption failed: key version is retired"}
	errNoSuchVersion  = kes.Error{Code: http.StatusBadRequest, Message: "key version does not exist"}
	errRotateFailed   = kes.Error{Code: http.StatusBadGateway, Message: "failed to rotate key"}
)

// rotateAttempts bounds how often a rotation is tried again when the key's
// record changed between its read and its apply.
const rotateAttempts = 3

// parseVersions parses a record's sealed material (one keystore value, or
// a bundle of every version's) into the key's versions.
func parseVersions(material []byte, minVersion int) (crypto.Versions, error) {
	values, err := decodeBundle(material)
	if err != nil {
		return crypto.Versions{}, err
	}
	keys := crypto.Versions{List: make([]crypto.KeyVersion, 0, len(values)), Min: minVersion}
	for _, v := range values {
		if len(v) == 0 { // a destroyed version
			keys.List = append(keys.List, crypto.KeyVersion{})
			continue
		}
		kv, err := crypto.ParseKeyVersion(v)
		if err != nil {
			keys.Zero()
			return crypto.Versions{}, err
		}
		keys.List = append(keys.List, kv)
	}
	return keys, nil
}

// keystoreRecord is the sealed record of a key read from the keystore:
// version 1's value (v1, parsed as kv) and, for a rotated key, every
// registered version's entry, read now. The error is the keystore's
// (wrapped) or an internal one.
func (s *Service) keystoreRecord(ctx context.Context, sl *sealer, enclave, name string, kv crypto.KeyVersion, v1 []byte) (fsm.KeyRecord, error) {
	reg, _ := s.cfg.FSM.KeyVersions(enclave, name)
	return s.keystoreRecordWith(ctx, sl, enclave, name, kv, v1, reg)
}

// keystoreRecordWith is keystoreRecord for the given versions ≥ 2.
func (s *Service) keystoreRecordWith(ctx context.Context, sl *sealer, enclave, name string, kv crypto.KeyVersion, v1 []byte, reg fsm.KeyVersions) (fsm.KeyRecord, error) {
	if len(reg.Versions) == 0 {
		return s.sealedRecord(sl, enclave, name, kv, v1)
	}
	values := [][]byte{v1}
	defer func() {
		for _, v := range values[1:] {
			clear(v)
		}
	}()
	for _, vi := range reg.Versions {
		if vi.Destroyed {
			values = append(values, nil)
			continue
		}
		entry, err := versionEntry(enclave, name, vi.Version)
		if err != nil {
			return fsm.KeyRecord{}, err
		}
		v, err := s.cfg.Store.Get(ctx, entry)
		s.observeKeystore(err)
		if err != nil {
			return fsm.KeyRecord{}, internal("read version %d of key %q: %w", vi.Version, name, err)
		}
		values = append(values, v)
	}
	bundle := encodeBundle(values)
	defer clear(bundle)
	rec, err := s.sealedRecord(sl, enclave, name, kv, bundle)
	rec.Versions, rec.MinVersion = reg.Versions, reg.MinVersion
	return rec, err
}

// versionEntries returns the keystore entries of a key's registered
// versions ≥ 2.
func (s *Service) versionEntries(enclave, name string) []string {
	reg, ok := s.cfg.FSM.KeyVersions(enclave, name)
	if !ok {
		return nil
	}
	var out []string
	for _, vi := range reg.Versions {
		if vi.Destroyed {
			continue
		}
		if e, err := versionEntry(enclave, name, vi.Version); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// RotateKey adds a new version to a key and returns its number: generate
// and encrypt use it from then on, on every node, once RotateKey returns.
// It returns kes.ErrKeyNotFound for a missing key and a 502 kes.Error if
// the keystore fails. It is a write: it runs on the leader.
func (s *Service) RotateKey(ctx context.Context, enclave, name, identity string) (int, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return 0, err
	}
	if err := s.write(ctx, Op{Kind: OpRotateKey, Enclave: enclave, Name: name, Identity: identity}); err != nil {
		return 0, err
	}
	rec, ok := s.cfg.FSM.Key(enclave, name)
	if !ok {
		return 0, kes.ErrKeyNotFound
	}
	return len(rec.Versions) + 1, nil
}

// execRotateKey (leader) writes the next version to the keystore and
// replicates the key's record with it; the rotation is acknowledged once
// every member has applied it (read-your-write on every node).
func (s *Service) execRotateKey(ctx context.Context, op Op) (uint64, error) {
	for attempt := 1; ; attempt++ {
		if _, err := s.keyRecord(ctx, op.Enclave, op.Name); err != nil {
			return 0, err // loads the key if it is not cached
		}
		unlock := s.locks.shared(op.Enclave)
		idx, err := s.rotateOnce(ctx, op)
		unlock()
		if errors.Is(err, fsm.ErrNotFound) && attempt < rotateAttempts {
			continue // the record changed since it was read: read it again
		}
		if err == nil {
			s.settle(ctx, idx)
		}
		return idx, err
	}
}

// rotateOnce adds the next version over the key's current record; it
// returns fsm.ErrNotFound when the record changed (or went) meanwhile.
// The caller holds the enclave's lock shared.
func (s *Service) rotateOnce(ctx context.Context, op Op) (uint64, error) {
	if err := s.enclaveExists(op.Enclave); err != nil {
		return 0, err
	}
	rec, ok := s.cfg.FSM.Key(op.Enclave, op.Name)
	if !ok {
		return 0, fsm.ErrNotFound
	}
	n := len(rec.Versions) + 2
	entry, err := versionEntry(op.Enclave, op.Name, n)
	if err != nil {
		return 0, err
	}
	kv, value, err := s.newVersion(ctx, entry, op.Identity)
	if err != nil {
		s.log.Error("failed to write a new key version to the keystore", "enclave", op.Enclave, "key", op.Name, "version", n, "error", err)
		return 0, errRotateFailed
	}
	defer kv.Zero()
	defer clear(value)
	cur, err := s.openRecord(ctx, op.Enclave, rec)
	if err != nil {
		return 0, internal("unseal key %q: %w", op.Name, err)
	}
	defer clear(cur)
	values, err := decodeBundle(cur)
	if err != nil {
		return 0, internal("key %q: %w", op.Name, err)
	}
	bundle := encodeBundle(append(values, value))
	defer clear(bundle)
	sl := s.seal.Load()
	next := rec
	sealed, err := sl.sealBytes(bundle, sealAD(op.Enclave, op.Name))
	if err != nil {
		return 0, internal("seal key: %w", err)
	}
	next.Sealed, next.Seal, next.LoadedAt = sealed, sl.id, s.now().UTC()
	info := fsm.VersionInfo{Version: n, CreatedAt: kv.CreatedAt, CreatedBy: op.Identity}
	idx, err := s.propose(ctx, fsm.AddKeyVersion{Enclave: op.Enclave, Version: info, Key: next, IfIndex: rec.Index})
	if errors.Is(err, fsm.ErrVersionsChanged) {
		return idx, fsm.ErrNotFound // a concurrent rotation won: try again
	}
	if err == nil {
		s.log.Info("key rotated", "enclave", op.Enclave, "key", op.Name, "version", n, "by", op.Identity)
	}
	return idx, err
}

// newVersion creates a key version in the keystore entry. An entry already
// there is a leftover (a rotation whose apply failed, or a key of the same
// name deleted behind the cluster's back): it is replaced, never adopted.
func (s *Service) newVersion(ctx context.Context, entry, identity string) (crypto.KeyVersion, []byte, error) {
	kv, err := crypto.NewKeyVersion(crypto.DefaultKeyType(), identity, s.now().UTC())
	if err != nil {
		return crypto.KeyVersion{}, nil, err
	}
	value, err := crypto.EncodeKeyVersion(kv)
	if err != nil {
		kv.Zero()
		return crypto.KeyVersion{}, nil, err
	}
	err = s.cfg.Store.Create(ctx, entry, value)
	if errors.Is(err, store.ErrExists) {
		s.log.Warn("replacing a leftover key version entry", "entry", entry)
		if err = s.cfg.Store.Delete(ctx, entry); err == nil || errors.Is(err, store.ErrNotFound) {
			err = s.cfg.Store.Create(ctx, entry, value)
		}
	}
	s.observeKeystore(err)
	if err != nil {
		kv.Zero()
		clear(value)
		return crypto.KeyVersion{}, nil, err
	}
	return kv, value, nil
}

// SetMinVersion sets the lowest version of a key that may decrypt:
// ciphertexts of older versions then fail with 400 "decryption failed:
// key version is retired", until a lower minimum is set again. 1 allows
// every version. It returns errNoSuchVersion for a version the key does
// not have. It runs on the leader.
func (s *Service) SetMinVersion(ctx context.Context, enclave, name string, minVersion int, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpSetMinVersion, Enclave: enclave, Name: name, Identity: identity, Version: minVersion})
}

// execSetMinVersion (leader) runs OpSetMinVersion.
func (s *Service) execSetMinVersion(ctx context.Context, op Op) (uint64, error) {
	rec, err := s.keyRecord(ctx, op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	if op.Version < 1 || op.Version > len(rec.Versions)+1 {
		return 0, errNoSuchVersion
	}
	if op.Version == max(rec.MinVersion, 1) {
		return rec.Index, nil
	}
	for _, v := range rec.Versions {
		if v.Destroyed && v.Version >= op.Version {
			return 0, errVersionDestroyed
		}
	}
	idx, err := s.propose(ctx, fsm.SetMinVersion{Enclave: op.Enclave, Name: op.Name, MinVersion: op.Version})
	if errors.Is(err, fsm.ErrNotFound) {
		return idx, errNoSuchVersion
	}
	if err == nil {
		s.settle(ctx, idx)
		s.log.Info("key's minimum decryption version set", "enclave", op.Enclave, "key", op.Name, "min_version", op.Version, "by", op.Identity)
	}
	return idx, err
}

// Rewrap decrypts a ciphertext of any version of the key and encrypts its
// plaintext under the newest version, without the plaintext leaving the
// server. Errors are Decrypt's.
func (s *Service) Rewrap(ctx context.Context, enclave, name string, ciphertext, associatedData []byte) ([]byte, error) {
	e, err := s.key(ctx, enclave, name)
	if err != nil {
		return nil, err
	}
	defer e.release()
	pt, err := e.decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	ct, _, err := e.keys.Encrypt(pt, associatedData)
	if err != nil {
		return nil, errEncrypt
	}
	return ct, nil
}

// VersionDetail is one version of a key, for describe.
type VersionDetail struct {
	Version   int
	CreatedAt time.Time
	CreatedBy string
	Retired   bool // below the key's minimum decryption version
	Destroyed bool // its material was deleted
}

// versionDetails lists a record's versions, version 1 first.
func versionDetails(rec fsm.KeyRecord) []VersionDetail {
	out := make([]VersionDetail, 0, len(rec.Versions)+1)
	out = append(out, VersionDetail{Version: 1, CreatedAt: rec.CreatedAt, CreatedBy: rec.CreatedBy, Retired: rec.MinVersion > 1})
	for _, v := range rec.Versions {
		out = append(out, VersionDetail{Version: v.Version, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy,
			Retired: v.Version < rec.MinVersion, Destroyed: v.Destroyed})
	}
	return out
}

var (
	errVersionNotRetired = kes.Error{Code: http.StatusConflict, Message: "key version is not retired"}
	errVersionDestroyed  = kes.Error{Code: http.StatusConflict, Message: "key version was destroyed"}
)

// DestroyVersion deletes the material of a retired version ≥ 2 of a key,
// for good: its ciphertexts can never be decrypted again. The version must
// be below the key's minimum decryption version (else 409 "key version is
// not retired"); version 1 is the key's own KES entry and cannot be
// destroyed (delete the key). It returns errNoSuchVersion for a version
// the key does not have or already destroyed. It runs on the leader.
func (s *Service) DestroyVersion(ctx context.Context, enclave, name string, version int, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpDestroyVersion, Enclave: enclave, Name: name, Identity: identity, Version: version})
}

// execDestroyVersion (leader): the record without the version's material
// is applied first, then the keystore entry is deleted, so that no record
// ever needs a missing entry.
func (s *Service) execDestroyVersion(ctx context.Context, op Op) (uint64, error) {
	rec, err := s.keyRecord(ctx, op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	i := op.Version - 2
	switch {
	case op.Version == 1:
		return 0, kes.Error{Code: http.StatusBadRequest, Message: "version 1 is the key itself: delete the key"}
	case i < 0 || i >= len(rec.Versions) || rec.Versions[i].Destroyed:
		return 0, errNoSuchVersion
	case op.Version >= rec.MinVersion:
		return 0, errVersionNotRetired
	}
	entry, err := versionEntry(op.Enclave, op.Name, op.Version)
	if err != nil {
		return 0, err
	}
	cur, err := s.openRecord(ctx, op.Enclave, rec)
	if err != nil {
		return 0, internal("unseal key %q: %w", op.Name, err)
	}
	defer clear(cur)
	values, err := decodeBundle(cur)
	if err != nil || len(values) <= op.Version-1 {
		return 0, internal("key %q: %w", op.Name, errBadBundle)
	}
	values[op.Version-1] = nil
	bundle := encodeBundle(values)
	defer clear(bundle)
	sl := s.seal.Load()
	sealed, err := sl.sealBytes(bundle, sealAD(op.Enclave, op.Name))
	if err != nil {
		return 0, internal("seal key: %w", err)
	}
	next := rec
	next.Sealed, next.Seal = sealed, sl.id
	idx, err := s.propose(ctx, fsm.DestroyKeyVersion{Enclave: op.Enclave, Version: op.Version, Key: next, IfIndex: rec.Index})
	if errors.Is(err, fsm.ErrNotFound) || errors.Is(err, fsm.ErrVersionsChanged) {
		return idx, kes.Error{Code: http.StatusConflict, Message: "key changed: try again"}
	}
	if err != nil {
		return idx, err
	}
	s.settle(ctx, idx)
	if err := s.cfg.Store.Delete(ctx, entry); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.observeKeystore(err)
		s.log.Error("could not delete a destroyed key version's keystore entry; delete it by hand", "entry", entry, "error", err)
	}
	s.log.Info("key version destroyed", "enclave", op.Enclave, "key", op.Name, "version", op.Version, "by", op.Identity)
	return idx, nil
}

// maxVersionGap bounds how many missing version numbers in a row
// discoverVersions looks past.
const maxVersionGap = 16

// discoverVersions returns the versions ≥ 2 of a key that a keystore
// listing (entry names) shows, for reconciling a restored backup that may
// predate rotations: the registered metadata where the registry knows a
// version, else the metadata stored in the version's value; a version
// missing below the highest one present was destroyed. The minimum
// decryption version is the registry's, at most the newest version, and
// above every destroyed one.
func (s *Service) discoverVersions(ctx context.Context, enclave, name string, present map[string]string) (fsm.KeyVersions, error) {
	reg, _ := s.cfg.FSM.KeyVersions(enclave, name)
	newest := 1
	// Past the registered versions, look until maxVersionGap numbers in a
	// row are missing (destroyed versions leave gaps).
	for n, gap := 2, 0; n-2 < len(reg.Versions) || gap < maxVersionGap; n++ {
		entry, err := versionEntry(enclave, name, n)
		if err != nil {
			return fsm.KeyVersions{}, err
		}
		if _, ok := present[entry]; ok {
			newest, gap = n, 0
		} else {
			gap++
		}
	}
	out := fsm.KeyVersions{Name: name, MinVersion: min(reg.MinVersion, newest)}
	for n := 2; n <= newest; n++ {
		entry, _ := versionEntry(enclave, name, n)
		if _, ok := present[entry]; !ok {
			out.Versions = append(out.Versions, fsm.VersionInfo{Version: n, Destroyed: true})
			out.MinVersion = max(out.MinVersion, n+1) // a destroyed version stays retired
			continue
		}
		if n-2 < len(reg.Versions) && !reg.Versions[n-2].Destroyed {
			out.Versions = append(out.Versions, reg.Versions[n-2])
			continue
		}
		v, err := s.cfg.Store.Get(ctx, entry)
		if err != nil {
			return fsm.KeyVersions{}, err
		}
		kv, err := crypto.ParseKeyVersion(v)
		clear(v)
		if err != nil {
			return fsm.KeyVersions{}, internal("version %d of key %q: %w", n, name, err)
		}
		out.Versions = append(out.Versions, fsm.VersionInfo{Version: n, CreatedAt: kv.CreatedAt, CreatedBy: kv.CreatedBy})
		kv.Zero()
	}
	return out, nil
}
