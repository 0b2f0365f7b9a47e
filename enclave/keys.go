package enclave

import (
	"context"
	"crypto/rand"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// Keystore failures as KES reports them.
var (
	errCreateFailed = kes.Error{Code: 502, Message: "failed to create key"}
	errReadFailed   = kes.Error{Code: 502, Message: "failed to read key"}
	errListFailed   = kes.Error{Code: 502, Message: "failed to list keys"}
	errDeleteFailed = kes.Error{Code: 502, Message: "failed to delete key"}
	errNoHMAC       = kes.Error{Code: 409, Message: "key does not support HMAC"}
	errGenerate     = kes.Error{Code: 500, Message: "failed to generate encryption key"}
	errEncrypt      = kes.Error{Code: 500, Message: "failed to encrypt plaintext"}
	errSealed       = kes.Error{Code: 503, Message: "key store is sealed: try again"}
)

// listPageSize is how many names one listing returns (KES: 1024).
const listPageSize = 1024

// key returns the unsealed key for a request, with a reference the caller
// must release: from this node's unsealed cache if the FSM record it came
// from is current and it is younger than Cache.Any, else by unsealing the
// FSM record, else by loading it from the keystore through the leader
// (once per key, cluster-wide). The first two paths touch neither network
// nor disk nor Raft.
func (s *Service) key(ctx context.Context, enclave, name string) (*cacheEntry, error) {
	rec, err := s.servableRecord(ctx, enclave, name)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixNano()
	notBefore := int64(0)
	if s.cfg.Cache.Any > 0 {
		notBefore = now - int64(s.cfg.Cache.Any)
	}
	if e, ok := s.cache.get(enclave, name, rec.Index, notBefore); ok {
		e.touch(now)
		return e, nil
	}
	sl, err := s.opener(ctx, rec)
	if err != nil {
		return nil, err
	}
	plain, err := sl.openBytes(rec.Sealed, sealAD(enclave, name))
	if err != nil {
		return nil, internal("unseal key %q of enclave %q: %w", name, enclave, err)
	}
	keys, err := parseVersions(plain, rec.MinVersion)
	clear(plain)
	if err != nil {
		return nil, internal("parse key %q of enclave %q: %w", name, enclave, err)
	}
	s.unseals.Add(1)
	e := newCacheEntry(rec.Index, keys, now)
	s.cache.put(enclave, name, e)
	return e, nil
}

// servableRecord returns the FSM record a request for a key is served
// from (see keyRecord: it loads the key, and holds back unconfirmed
// restored records); opener gives the seal key that opens it. Errors:
// kes.ErrEnclaveNotFound, errSealed, and keyRecord's.
func (s *Service) servableRecord(ctx context.Context, enclave, name string) (fsm.KeyRecord, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return fsm.KeyRecord{}, err
	}
	if s.seal.Load() == nil {
		return fsm.KeyRecord{}, errSealed
	}
	return s.keyRecord(ctx, enclave, name)
}

// loadKey makes the cluster cache a key that exists only in the keystore.
// Concurrent callers for one key share one load.
func (s *Service) loadKey(ctx context.Context, enclave, name string) error {
	_, err, _ := s.loading.Do(enclave+"\x00"+name, func() (any, error) {
		if _, ok := s.cfg.FSM.Key(enclave, name); ok {
			return nil, nil
		}
		return nil, s.write(ctx, Op{Kind: OpLoadKey, Enclave: enclave, Name: name})
	})
	return err
}

// execLoadKey runs on the leader: read the keystore, seal, replicate.
// Concurrent loads of one key (the leader's own and those every follower
// forwards) share one keystore read.
func (s *Service) execLoadKey(ctx context.Context, op Op) (uint64, error) {
	idx, err, _ := s.reads.Do(op.Enclave+"\x00"+op.Name, func() (any, error) {
		return s.readKey(ctx, op)
	})
	i, _ := idx.(uint64)
	return i, err
}

// readKey loads a key that is not cached from the keystore and replicates
// it. Like a create, it holds the enclave's lock shared from the
// enclave-exists check through the apply, so a value read from a deleted
// enclave can never be replicated into a re-created one of the same name.
func (s *Service) readKey(ctx context.Context, op Op) (uint64, error) {
	unlock := s.locks.shared(op.Enclave)
	defer unlock()
	if err := s.enclaveExists(op.Enclave); err != nil {
		return 0, err
	}
	if r, ok := s.cfg.FSM.Key(op.Enclave, op.Name); ok {
		return r.Index, nil
	}
	if _, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name); ok {
		return 0, kes.ErrKeyNotFound
	}
	if !s.allowKeystore() {
		return 0, errReadFailed
	}
	sn, err := storeName(op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	value, version, err := store.GetVersion(ctx, s.cfg.Store, sn)
	s.observeKeystore(err)
	if errors.Is(err, store.ErrNotFound) {
		return 0, kes.ErrKeyNotFound
	}
	if err != nil {
		s.log.Error("failed to read key from keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errReadFailed
	}
	defer clear(value)
	kv, err := crypto.ParseKeyVersion(value)
	if err != nil {
		s.log.Error("keystore holds an unreadable key", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errReadFailed
	}
	defer kv.Zero()
	sl := s.seal.Load()
	if sl == nil {
		return 0, errSealed
	}
	rec, err := s.keystoreRecord(ctx, sl, op.Enclave, op.Name, kv, value)
	if err != nil {
		s.log.Error("failed to read key versions from keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errReadFailed
	}
	rec.Version = version
	idx, err := s.proposeKey(ctx, fsm.PutKey{Enclave: op.Enclave, Key: rec})
	if errors.Is(err, kes.ErrKeyExists) { // deleted while it was read
		return idx, kes.ErrKeyNotFound
	}
	return idx, err
}

// replicateKey seals the stored value (of the given keystore version) of a
// key just created or imported and proposes it, with the key's deletion
// protection if protect is set.
// It returns kes.ErrEnclaveNotFound if the enclave was deleted before the
// apply, kes.ErrKeyExists if the record exists or the name is pending
// deletion.
func (s *Service) replicateKey(ctx context.Context, enclave, name string, kv crypto.KeyVersion, value []byte, version string, protect *fsm.Protection) (uint64, error) {
	sl := s.seal.Load()
	if sl == nil {
		return 0, errSealed
	}
	rec, err := s.sealedRecord(sl, enclave, name, kv, value)
	if err != nil {
		return 0, err
	}
	rec.Version = version
	return s.proposeKey(ctx, fsm.PutKey{Enclave: enclave, Key: rec, Protect: protect, Fresh: true})
}

// proposeKey proposes a PutKey and maps its results: kes.ErrKeyExists if
// the record exists or the name is pending deletion, kes.ErrEnclaveNotFound
// if the enclave is gone.
func (s *Service) proposeKey(ctx context.Context, cmd fsm.PutKey) (uint64, error) {
	idx, err := s.propose(ctx, cmd)
	switch {
	case errors.Is(err, fsm.ErrExists), errors.Is(err, fsm.ErrDeleted):
		return idx, kes.ErrKeyExists
	case errors.Is(err, fsm.ErrNotFound):
		return idx, kes.ErrEnclaveNotFound
	}
	return idx, err
}

// sealedRecord is the replicated record of a key read from (or written
// to) the keystore: its metadata and the keystore value sealed with the
// cluster seal key, bound to the enclave and name. The error is internal.
func (s *Service) sealedRecord(sl *sealer, enclave, name string, kv crypto.KeyVersion, value []byte) (fsm.KeyRecord, error) {
	sealed, err := sl.sealBytes(value, sealAD(enclave, name))
	if err != nil {
		return fsm.KeyRecord{}, internal("seal key: %w", err)
	}
	return fsm.KeyRecord{
		Name:      name,
		Algorithm: kv.Key.Type.String(),
		CreatedAt: kv.CreatedAt,
		CreatedBy: kv.CreatedBy,
		Sealed:    sealed,
		Seal:      sl.id,
		LoadedAt:  s.now().UTC(),
	}, nil
}

// execCreateKey runs a create or import on the leader: create in the
// keystore, then cache. It holds the enclave's lock shared from the
// enclave-exists check through the apply, so an enclave delete (which holds
// it exclusively) either runs before, and the create finds no enclave, or
// after, and its listing sees the new entry. If the apply fails, the
// keystore entry is removed again (best effort), since the client is told
// the key was not created.
func (s *Service) execCreateKey(ctx context.Context, op Op) (uint64, error) {
	defer clear(op.Key)
	unlock := s.locks.shared(op.Enclave)
	defer unlock()
	if err := s.enclaveExists(op.Enclave); err != nil {
		return 0, err
	}
	if _, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name); ok {
		return 0, kes.ErrKeyExists // the name stays reserved until the purge
	}
	if !s.allowKeystore() {
		return 0, errCreateFailed
	}
	sn, err := storeName(op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	kv, err := s.newKeyVersion(op)
	if err != nil {
		return 0, err
	}
	defer kv.Zero()
	value, err := crypto.EncodeKeyVersion(kv)
	if err != nil {
		return 0, internal("encode key: %w", err)
	}
	defer clear(value)
	version, err := store.CreateVersion(ctx, s.cfg.Store, sn, value)
	s.observeKeystore(err)
	switch {
	case errors.Is(err, store.ErrExists):
		return 0, kes.ErrKeyExists
	case err != nil:
		s.log.Error("failed to create key in keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errCreateFailed
	}
	idx, err := s.replicateKey(ctx, op.Enclave, op.Name, kv, value, version, s.configProtection(op.Name))
	// Only a deterministic rejection proves that no replica holds the
	// record. After a lost leadership or a timeout the entry may still be
	// committed by the next leader, and deleting its material then would
	// destroy every data key generated under it; such an orphan is
	// harmless by comparison (and purged if its enclave is re-created).
	if errors.Is(err, kes.ErrEnclaveNotFound) {
		s.discardCreated(ctx, op, sn, err)
	}
	return idx, err
}

// newKeyVersion returns the key material of a create (random) or an
// import (op.Key, which it clears).
func (s *Service) newKeyVersion(op Op) (crypto.KeyVersion, error) {
	if op.Kind != OpImportKey {
		kv, err := crypto.NewKeyVersion(crypto.DefaultKeyType(), op.Identity, s.now().UTC())
		if err != nil {
			return crypto.KeyVersion{}, errCreateFailed
		}
		return kv, nil
	}
	kv, err := crypto.ImportKeyVersion(op.Key, op.Cipher, op.Identity, s.now().UTC())
	clear(op.Key)
	if errors.Is(err, crypto.ErrUnsupportedAlgorithm) {
		return crypto.KeyVersion{}, errUnsupportedCipher(op.Cipher)
	}
	if err != nil {
		return crypto.KeyVersion{}, errKeySize(op.Cipher)
	}
	return kv, nil
}

// discardCreated removes the keystore entry of a create whose apply was
// rejected, so that a key the client was told does not exist cannot surface
// later, in a listing or in a re-created enclave of the same name. Best
// effort: a failure is logged, and the purge when an enclave is created is
// the backstop.
func (s *Service) discardCreated(ctx context.Context, op Op, entry string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.Delete(ctx, entry); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("failed to remove the keystore entry of a key whose create failed",
			"enclave", op.Enclave, "key", op.Name, "cause", cause, "error", err)
		return
	}
	s.log.Warn("removed the keystore entry of a key whose create failed", "enclave", op.Enclave, "key", op.Name, "cause", cause)
}

// execDeleteKey runs on the leader: delete from the keystore, then evict
// from every node in one apply; or, with a recovery window, schedule the
// deletion (execScheduleDelete).
func (s *Service) execDeleteKey(ctx context.Context, op Op) (uint64, error) {
	if s.KeyProtected(op.Enclave, op.Name) {
		return 0, errKeyProtected
	}
	if _, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name); ok {
		return 0, kes.ErrKeyNotFound
	}
	if !s.allowKeystore() {
		return 0, errDeleteFailed
	}
	sn, err := storeName(op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	if s.cfg.RecoveryWindow > 0 {
		return s.execScheduleDelete(ctx, op, sn)
	}
	// Versions ≥ 2 first: a failure leaves the key whole.
	for _, entry := range s.versionEntries(op.Enclave, op.Name) {
		if err := s.cfg.Store.Delete(ctx, entry); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.observeKeystore(err)
			s.log.Error("failed to delete a key version from keystore", "enclave", op.Enclave, "key", op.Name, "entry", entry, "error", err)
			return 0, errDeleteFailed
		}
	}
	err = s.cfg.Store.Delete(ctx, sn)
	s.observeKeystore(err)
	notFound := errors.Is(err, store.ErrNotFound)
	if err != nil && !notFound {
		s.log.Error("failed to delete key from keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errDeleteFailed
	}
	idx, perr := s.propose(ctx, fsm.RemoveKeys{Enclave: op.Enclave, Names: []string{op.Name}, Forget: true})
	if perr != nil && !errors.Is(perr, fsm.ErrNotFound) {
		return 0, perr
	}
	s.settle(ctx, idx)
	if notFound {
		return idx, kes.ErrKeyNotFound
	}
	return idx, nil
}

// CreateKey creates a new key (AES256 where the CPU has AES-GCM hardware,
// else ChaCha20) with a fresh HMAC key. It returns kes.ErrKeyExists if the
// keystore already holds the name, a 502 kes.Error if the keystore fails.
func (s *Service) CreateKey(ctx context.Context, enclave, name, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpCreateKey, Enclave: enclave, Name: name, Identity: identity})
}

// ImportKey stores given key material. cipher must be one of AES256,
// AES256-GCM_SHA256, ChaCha20, XCHACHA20-POLY1305 (else 406) and the key 32
// bytes long (else 406).
func (s *Service) ImportKey(ctx context.Context, enclave, name string, key []byte, cipher, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	if _, err := crypto.ParseKeyType(cipher); err != nil {
		return errUnsupportedCipher(cipher)
	}
	if len(key) != crypto.KeySize {
		return errKeySize(cipher)
	}
	return s.write(ctx, Op{Kind: OpImportKey, Enclave: enclave, Name: name, Identity: identity, Key: key, Cipher: cipher})
}

// DeleteKey deletes a key from the keystore and evicts it on every node.
// It returns kes.ErrKeyNotFound if the keystore does not hold it.
func (s *Service) DeleteKey(ctx context.Context, enclave, name, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpDeleteKey, Enclave: enclave, Name: name, Identity: identity})
}

// DescribeKey returns a key's metadata, loading the key if needed. It
// does not unseal the key.
func (s *Service) DescribeKey(ctx context.Context, enclave, name string) (KeyInfo, error) {
	rec, err := s.servableRecord(ctx, enclave, name)
	if err != nil {
		return KeyInfo{}, err
	}
	info := KeyInfo{Name: name, Algorithm: rec.Algorithm, CreatedAt: rec.CreatedAt, CreatedBy: rec.CreatedBy,
		Protected: s.KeyProtected(enclave, name), Versions: versionDetails(rec), MinVersion: rec.MinVersion}
	if every, ok := s.rotationPeriod(name); ok {
		_, at := newestVersion(rec)
		info.RotateEvery, info.NextRotation = every, at.Add(every)
	}
	return info, nil
}

// ListKeys lists key names from the keystore (the durable root), hiding
// reserved entries and other enclaves' keys. It returns up to 1024 names
// greater than continueAt and the name to continue at.
func (s *Service) ListKeys(ctx context.Context, enclave, prefix, continueAt string) ([]string, string, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return nil, "", err
	}
	if !s.allowKeystore() {
		return nil, "", errListFailed
	}
	sp, err := listPrefix(enclave)
	if err != nil {
		return nil, "", err
	}
	all, err := s.cfg.Store.List(ctx, sp+prefix)
	s.observeKeystore(err)
	if err != nil {
		s.log.Error("failed to list keys in keystore", "enclave", enclave, "error", err)
		return nil, "", errListFailed
	}
	names := make([]string, 0, len(all))
	for _, n := range all {
		n, ok := strings.CutPrefix(n, sp)
		if ok && ValidName(n) && n > continueAt && !s.pendingDeletion(enclave, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > listPageSize {
		return names[:listPageSize], names[listPageSize-1], nil
	}
	return names, "", nil
}

// GenerateKey returns a new 32-byte data key and its ciphertext under the
// named key, with associatedData bound to it.
func (s *Service) GenerateKey(ctx context.Context, enclave, name string, associatedData []byte) ([]byte, []byte, error) {
	e, err := s.key(ctx, enclave, name)
	if err != nil {
		return nil, nil, err
	}
	defer e.release()
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, errGenerate
	}
	ct, _, err := e.keys.Encrypt(dek, associatedData)
	if err != nil {
		clear(dek)
		s.log.Error("failed to encrypt data key", "key", name, "error", err)
		return nil, nil, errGenerate
	}
	return dek, ct, nil
}

// Encrypt encrypts plaintext under the named key.
func (s *Service) Encrypt(ctx context.Context, enclave, name string, plaintext, associatedData []byte) ([]byte, error) {
	e, err := s.key(ctx, enclave, name)
	if err != nil {
		return nil, err
	}
	defer e.release()
	ct, _, err := e.keys.Encrypt(plaintext, associatedData)
	if err != nil {
		s.log.Error("failed to encrypt", "key", name, "error", err)
		return nil, errEncrypt
	}
	return ct, nil
}

// Decrypt decrypts a ciphertext (raw, MessagePack or JSON format) under the
// named key. An unauthentic ciphertext or wrong context is kes.ErrDecrypt.
func (s *Service) Decrypt(ctx context.Context, enclave, name string, ciphertext, associatedData []byte) ([]byte, error) {
	e, err := s.key(ctx, enclave, name)
	if err != nil {
		return nil, err
	}
	defer e.release()
	return e.decrypt(ciphertext, associatedData)
}

// decrypt decrypts with the entry's versions and maps the failures onto
// the API's errors: errVersionRetired, else kes.ErrDecrypt.
func (e *cacheEntry) decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	pt, _, err := e.keys.Decrypt(ciphertext, associatedData)
	switch {
	case errors.Is(err, crypto.ErrVersionRetired):
		return nil, errVersionRetired
	case err != nil:
		return nil, kes.ErrDecrypt
	}
	return pt, nil
}

// HMAC returns HMAC-SHA256 of message under the HMAC key of the key's
// version 1, so the result stays the same across rotations (an HMAC is
// used as a stable identifier), or of the given version (> 0). Legacy
// keys without an HMAC key give 409 "key does not support HMAC"; a
// version the key does not have, errNoSuchVersion.
func (s *Service) HMAC(ctx context.Context, enclave, name string, message []byte, version int) ([]byte, error) {
	e, err := s.key(ctx, enclave, name)
	if err != nil {
		return nil, err
	}
	defer e.release()
	if version <= 0 {
		version = 1
	}
	if version > len(e.keys.List) {
		return nil, errNoSuchVersion
	}
	kv := e.keys.List[version-1]
	if kv.HMAC == nil {
		return nil, errNoHMAC
	}
	return kv.HMAC.Sum(message), nil
}
