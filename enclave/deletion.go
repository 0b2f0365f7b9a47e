package enclave

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// The recovery window (config protection.recovery_window, Config.
// RecoveryWindow): with it set, a delete makes the key unusable and
// invisible at once on every node (an fsm.ScheduleDelete apply), keeps its
// name reserved, schedules the keystore entry for deletion
// (store.ScheduleDelete: AWS Secrets Manager's own recovery window) and
// leaves the purge to the leader when the window ends. RestoreKey brings
// the key back within the window; PurgeKey ends it early.

var (
	errRestoreFailed       = kes.Error{Code: http.StatusBadGateway, Message: "failed to restore key"}
	errEnclaveHasDeletions = kes.Error{Code: http.StatusConflict, Message: "enclave holds keys pending deletion"}
	errEnclaveNotEmpty     = kes.Error{Code: http.StatusConflict, Message: "enclave holds keys: delete them first"}
)

// PendingDeletion is a key deleted within the recovery window.
type PendingDeletion = fsm.Deletion

// DeletedKeys returns the enclave's keys pending deletion whose names
// start with pattern (a trailing '*' is allowed, as in a key listing),
// sorted by name. It is a read of this node's state.
func (s *Service) DeletedKeys(enclave, pattern string) ([]PendingDeletion, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return nil, err
	}
	all := s.cfg.FSM.Deletions(enclave)
	out := all[:0]
	for _, d := range all {
		if strings.HasPrefix(d.Name, strings.TrimSuffix(pattern, "*")) {
			out = append(out, d)
		}
	}
	return out, nil
}

// RestoreKey brings back a key pending deletion, with its old material:
// every ciphertext made under it decrypts again. It returns
// kes.ErrKeyNotFound if the key is not pending deletion, a 502 kes.Error
// if the keystore fails. It is a write: it runs on the leader.
func (s *Service) RestoreKey(ctx context.Context, enclave, name, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpRestoreKey, Enclave: enclave, Name: name, Identity: identity})
}

// PurgeKey destroys a key pending deletion now instead of at the end of
// the window. It returns kes.ErrKeyNotFound if the key is not pending
// deletion, a 502 kes.Error if the keystore fails. It runs on the leader.
func (s *Service) PurgeKey(ctx context.Context, enclave, name, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpPurgeKey, Enclave: enclave, Name: name, Identity: identity})
}

// execScheduleDelete (leader) deletes a key within the recovery window:
// the key must exist (cached, or in the keystore); the deletion is applied
// and settled on every member before the keystore entry is scheduled for
// deletion, best effort (the purge destroys it in any case).
func (s *Service) execScheduleDelete(ctx context.Context, op Op, entry string) (uint64, error) {
	if _, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name); ok {
		return 0, kes.ErrKeyNotFound
	}
	if _, ok := s.cfg.FSM.Key(op.Enclave, op.Name); !ok {
		v, err := s.cfg.Store.Get(ctx, entry)
		clear(v)
		s.observeKeystore(err)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return 0, kes.ErrKeyNotFound
		case err != nil:
			s.log.Error("failed to read key from keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
			return 0, errDeleteFailed
		}
	}
	now := s.now().UTC()
	d := fsm.Deletion{Name: op.Name, DeletedAt: now, DeletedBy: op.Identity, PurgeAt: now.Add(s.cfg.RecoveryWindow)}
	idx, err := s.propose(ctx, fsm.ScheduleDeletion{Enclave: op.Enclave, Key: d})
	switch {
	case errors.Is(err, fsm.ErrExists):
		return idx, kes.ErrKeyNotFound
	case errors.Is(err, fsm.ErrNotFound):
		return idx, kes.ErrEnclaveNotFound
	case err != nil:
		return idx, err
	}
	s.settle(ctx, idx)
	for _, e := range append([]string{entry}, s.versionEntries(op.Enclave, op.Name)...) {
		err = store.ScheduleDelete(ctx, s.cfg.Store, e, s.cfg.RecoveryWindow)
		s.observeKeystore(err)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("could not schedule a keystore entry for deletion; it is purged at the end of the window all the same",
				"enclave", op.Enclave, "key", op.Name, "entry", e, "error", err)
		}
	}
	s.log.Info("key deleted within the recovery window", "enclave", op.Enclave, "key", op.Name,
		"by", op.Identity, "purge_at", d.PurgeAt)
	return idx, nil
}

// execRestoreKey (leader) restores a key pending deletion: it cancels the
// keystore's scheduled deletion, ends the pending deletion and loads the
// key again, so every node serves it when the client hears success.
func (s *Service) execRestoreKey(ctx context.Context, op Op) (uint64, error) {
	s.deletions.Lock()
	defer s.deletions.Unlock()
	d, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name)
	if !ok {
		return 0, kes.ErrKeyNotFound
	}
	entry, err := storeName(op.Enclave, op.Name)
	if err != nil {
		return 0, err
	}
	for _, e := range s.versionEntries(op.Enclave, op.Name) {
		if err := store.RestoreDeleted(ctx, s.cfg.Store, e); err != nil {
			s.observeKeystore(err)
			s.log.Error("failed to restore a key version in keystore", "enclave", op.Enclave, "key", op.Name, "entry", e, "error", err)
			return 0, errRestoreFailed
		}
	}
	err = store.RestoreDeleted(ctx, s.cfg.Store, entry)
	s.observeKeystore(err)
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		s.log.Error("failed to restore key in keystore", "enclave", op.Enclave, "key", op.Name, "error", err)
		return 0, errRestoreFailed
	}
	idx, err := s.propose(ctx, fsm.EndDeletion{Enclave: op.Enclave, Name: op.Name, DeletedAt: d.DeletedAt, Purged: gone})
	if errors.Is(err, fsm.ErrNotFound) {
		return idx, kes.ErrKeyNotFound
	}
	if err != nil {
		return idx, err
	}
	if gone {
		s.log.Error("key pending deletion has no keystore entry left; nothing to restore", "enclave", op.Enclave, "key", op.Name)
		return idx, kes.ErrKeyNotFound
	}
	s.log.Info("key restored", "enclave", op.Enclave, "key", op.Name, "by", op.Identity)
	if i, err := s.readKey(ctx, Op{Kind: OpLoadKey, Enclave: op.Enclave, Name: op.Name}); err == nil {
		idx = i
	}
	return idx, nil
}

// execPurgeKey (leader) destroys a key pending deletion at once (an
// admin's explicit purge).
func (s *Service) execPurgeKey(ctx context.Context, op Op) (uint64, error) {
	d, ok := s.cfg.FSM.Deleted(op.Enclave, op.Name)
	if !ok {
		return 0, kes.ErrKeyNotFound
	}
	return s.purge(ctx, op.Enclave, d, op.Identity)
}

// purge destroys the keystore entry of a pending deletion, then ends the
// deletion. A crash in between leaves the deletion pending; the next
// leader purges again (an entry already gone is fine).
func (s *Service) purge(ctx context.Context, enclave string, d fsm.Deletion, by string) (uint64, error) {
	s.deletions.Lock()
	defer s.deletions.Unlock()
	if cur, ok := s.cfg.FSM.Deleted(enclave, d.Name); !ok || !cur.DeletedAt.Equal(d.DeletedAt) {
		return 0, kes.ErrKeyNotFound // restored or purged meanwhile
	}
	entry, err := storeName(enclave, d.Name)
	if err != nil {
		return 0, err
	}
	for _, e := range append(s.versionEntries(enclave, d.Name), entry) { // version 1 last
		err = store.Purge(ctx, s.cfg.Store, e)
		s.observeKeystore(err)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("failed to purge key from keystore", "enclave", enclave, "key", d.Name, "entry", e, "error", err)
			return 0, errDeleteFailed
		}
	}
	idx, err := s.propose(ctx, fsm.EndDeletion{Enclave: enclave, Name: d.Name, DeletedAt: d.DeletedAt, Purged: true})
	if errors.Is(err, fsm.ErrNotFound) {
		return idx, kes.ErrKeyNotFound
	}
	if err != nil {
		return idx, err
	}
	s.log.Info("key purged", "enclave", enclave, "key", d.Name, "by", by, "deleted_at", d.DeletedAt)
	if s.cfg.Audit != nil {
		s.cfg.Audit(enclave, "/v1/key/purge/"+d.Name, by)
	}
	return idx, nil
}

// purgeDue runs on the leader: it purges every pending deletion whose
// window has ended. A failure is retried at the next run.
func (s *Service) purgeDue(ctx context.Context) {
	if !s.cfg.Proposer.IsLeader() {
		return
	}
	due, _ := s.cfg.FSM.DueDeletions(s.now())
	for _, d := range due {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.purge(ctx, d.Enclave, d.Key, PurgeIdentity); err != nil && !errors.Is(err, kes.ErrKeyNotFound) {
			s.log.Warn("purge at the end of the recovery window failed; retrying later", "enclave", d.Enclave, "key", d.Key.Name, "error", err)
		}
	}
}

// PurgeIdentity is the identity the audit log names for purges the leader
// runs at the end of a recovery window.
const PurgeIdentity = "keyraft:recovery-window"

// purgeInterval is how often the leader looks for deletions whose window
// has ended: a tenth of the window, between 100 ms and a minute (a minute
// without a window: deletions made while one was configured still end).
func (s *Service) purgeInterval() time.Duration {
	if s.cfg.RecoveryWindow <= 0 {
		return time.Minute
	}
	return min(max(s.cfg.RecoveryWindow/10, 100*time.Millisecond), time.Minute)
}

// checkEnclaveDeletable refuses, while a recovery window is configured, to
// delete an enclave that still holds keys or pending deletions: deleting
// the enclave would destroy them without a window.
func (s *Service) checkEnclaveDeletable(ctx context.Context, enclave string) error {
	if s.cfg.RecoveryWindow <= 0 {
		return nil
	}
	if len(s.cfg.FSM.Deletions(enclave)) > 0 {
		return errEnclaveHasDeletions
	}
	prefix, err := enclaveNamespace(enclave)
	if err != nil {
		return err
	}
	names, err := s.cfg.Store.List(ctx, prefix)
	s.observeKeystore(err)
	if err != nil {
		s.log.Error("failed to list an enclave's keys", "enclave", enclave, "error", err)
		return errListFailed
	}
	if len(names) > 0 {
		return errEnclaveNotEmpty
	}
	return nil
}

// pendingDeletion reports whether a key is pending deletion.
func (s *Service) pendingDeletion(enclave, name string) bool {
	_, ok := s.cfg.FSM.Deleted(enclave, name)
	return ok
}
