package enclave

import (
	"context"
	"net/http"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

// Deletion protection: a protected key cannot be deleted (nor its
// enclave) until an admin removes the protection. Keys get it at create
// time when their name matches a protection.deletion pattern of the
// config, or later from an admin (SetKeyProtection).

var (
	errKeyProtected     = kes.Error{Code: http.StatusConflict, Message: "key is protected from deletion"}
	errEnclaveProtected = kes.Error{Code: http.StatusConflict, Message: "enclave holds keys protected from deletion"}
)

// protectedByConfig reports whether a new key named name is protected by a
// protection.deletion pattern.
func (s *Service) protectedByConfig(name string) bool {
	for _, p := range s.cfg.ProtectDeletion {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// mayProtect reports whether identity may set or remove deletion
// protection in the enclave: the cluster admin, or the enclave's own
// admin. Policies cannot grant it.
func (s *Service) mayProtect(enclave, identity string) bool {
	if s.isAdmin(identity) {
		return true
	}
	e, ok := s.cfg.FSM.Enclave(enclave)
	return ok && enclave != DefaultEnclave && e.Admin != "" && e.Admin == identity
}

// SetKeyProtection protects a key from deletion, or removes the
// protection. Only the cluster admin and the enclave's admin may (else
// kes.ErrNotAllowed); the key must exist in the keystore
// (kes.ErrKeyNotFound). It is a write: it runs on the leader.
func (s *Service) SetKeyProtection(ctx context.Context, enclave, name string, protected bool, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	kind := OpUnprotectKey
	if protected {
		kind = OpProtectKey
	}
	return s.write(ctx, Op{Kind: kind, Enclave: enclave, Name: name, Identity: identity})
}

// execProtectKey (leader) runs OpProtectKey and OpUnprotectKey.
func (s *Service) execProtectKey(ctx context.Context, op Op) (uint64, error) {
	if !s.mayProtect(op.Enclave, op.Identity) {
		return 0, kes.ErrNotAllowed
	}
	if _, err := s.keyRecord(ctx, op.Enclave, op.Name); err != nil {
		return 0, err // loads the key: it must exist
	}
	idx, err := s.propose(ctx, fsm.SetProtection{
		Enclave:   op.Enclave,
		Key:       fsm.Protection{Name: op.Name, SetBy: op.Identity, SetAt: s.now().UTC()},
		Protected: op.Kind == OpProtectKey,
	})
	if err == nil {
		s.log.Info("deletion protection changed", "enclave", op.Enclave, "key", op.Name,
			"protected", op.Kind == OpProtectKey, "by", op.Identity)
	}
	return idx, err
}

// KeyProtected reports whether a key is protected from deletion.
func (s *Service) KeyProtected(enclave, name string) bool {
	_, ok := s.cfg.FSM.Protected(enclave, name)
	return ok
}

// configProtection is the protection a create under a
// protection.deletion pattern carries, or nil.
func (s *Service) configProtection(name string) *fsm.Protection {
	if !s.protectedByConfig(name) {
		return nil
	}
	return &fsm.Protection{Name: name, SetBy: "config", SetAt: s.now().UTC()}
}
