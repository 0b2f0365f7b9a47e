package enclave

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

var errCannotDeleteDefault = kes.Error{Code: 400, Message: "the default enclave cannot be deleted"}

// CreateEnclave creates an enclave whose admin identity may manage its
// keys, policies and identities. It returns kes.ErrEnclaveExists if it
// exists (the default enclave always does). A new enclave starts with an
// empty keystore namespace: leftovers of a former enclave of the same name
// are deleted first (a 502 kes.Error if the keystore fails).
func (s *Service) CreateEnclave(ctx context.Context, name, admin, identity string) error {
	if name == DefaultEnclave {
		return kes.ErrEnclaveExists
	}
	return s.write(ctx, Op{Kind: OpCreateEnclave, Enclave: name, Admin: admin, Identity: identity})
}

// DescribeEnclave returns an enclave's metadata or kes.ErrEnclaveNotFound.
func (s *Service) DescribeEnclave(_ context.Context, name string) (EnclaveInfo, error) {
	if name == DefaultEnclave {
		return EnclaveInfo{Name: DefaultEnclave, Admin: s.cfg.Admin, CreatedAt: processStart}, nil
	}
	e, ok := s.cfg.FSM.Enclave(name)
	if !ok {
		return EnclaveInfo{}, kes.ErrEnclaveNotFound
	}
	return EnclaveInfo{Name: e.Name, Admin: e.Admin, CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy}, nil
}

// ListEnclaves returns the sorted names of the enclaves starting with
// prefix, the default enclave included.
func (s *Service) ListEnclaves(_ context.Context, prefix string) ([]string, error) {
	names := []string{}
	if strings.HasPrefix(DefaultEnclave, prefix) {
		names = append(names, DefaultEnclave)
	}
	for _, e := range s.cfg.FSM.Enclaves() {
		if strings.HasPrefix(e.Name, prefix) {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// DeleteEnclave deletes an enclave: its keys from the keystore, then the
// enclave with its policies and identities from every node in one apply.
// It returns kes.ErrEnclaveNotFound if there is none and a 400 for the
// default enclave. A key whose create was acknowledged before the delete
// is gone after it; creates that wait for it fail with
// kes.ErrEnclaveNotFound.
func (s *Service) DeleteEnclave(ctx context.Context, name, identity string) error {
	if name == DefaultEnclave {
		return errCannotDeleteDefault
	}
	return s.write(ctx, Op{Kind: OpDeleteEnclave, Enclave: name, Identity: identity})
}

// WritePolicy creates or replaces a policy of an enclave.
func (s *Service) WritePolicy(ctx context.Context, enclave, name string, allow, deny []string, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpWritePolicy, Enclave: enclave, Name: name, Allow: allow, Deny: deny, Identity: identity})
}

// DeletePolicy deletes a policy of an enclave and the identities assigned
// to it; kes.ErrPolicyNotFound if there is none.
func (s *Service) DeletePolicy(ctx context.Context, enclave, name, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpDeletePolicy, Enclave: enclave, Name: name, Identity: identity})
}

// AssignPolicy assigns an identity to a policy of an enclave (replacing a
// previous assignment); kes.ErrPolicyNotFound if the policy does not exist.
func (s *Service) AssignPolicy(ctx context.Context, enclave, policy, assignee, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	if s.isAdmin(assignee) {
		return errAssignAdmin
	}
	return s.write(ctx, Op{Kind: OpAssignPolicy, Enclave: enclave, Name: policy, Assignee: assignee, Identity: identity})
}

// DeleteIdentity removes an identity's policy assignment in an enclave;
// kes.ErrIdentityNotFound if it has none.
func (s *Service) DeleteIdentity(ctx context.Context, enclave, assignee, identity string) error {
	if err := s.enclaveExists(enclave); err != nil {
		return err
	}
	return s.write(ctx, Op{Kind: OpDeleteIdentity, Enclave: enclave, Assignee: assignee, Identity: identity})
}

// execCreateEnclave runs on the leader. Holding the enclave's lock
// exclusively, it makes sure this node applied everything committed
// before (barrier), refuses an existing enclave with
// kes.ErrEnclaveExists, deletes whatever the keystore holds in the
// enclave's namespace (entries a deposed leader wrote but could not
// commit or remove), and only then creates the enclave, so no leftover key
// of a former enclave of the same name can reappear in it. Keystore
// failures are 502 kes.Errors.
func (s *Service) execCreateEnclave(ctx context.Context, op Op) (uint64, error) {
	if op.Enclave == DefaultEnclave {
		return 0, kes.ErrEnclaveExists
	}
	unlock := s.locks.exclusive(op.Enclave)
	defer unlock()
	if err := s.barrier(ctx); err != nil {
		return 0, err
	}
	if _, ok := s.cfg.FSM.Enclave(op.Enclave); ok {
		return 0, kes.ErrEnclaveExists
	}
	n, err := s.clearNamespace(ctx, op.Enclave)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.log.Warn("deleted leftover keystore entries of a former enclave", "enclave", op.Enclave, "count", n)
	}
	rec := fsm.EnclaveRecord{Name: op.Enclave, Admin: op.Admin, CreatedAt: s.now().UTC(), CreatedBy: op.Identity}
	idx, err := s.propose(ctx, fsm.PutEnclave{Enclave: rec})
	if errors.Is(err, fsm.ErrExists) {
		return idx, kes.ErrEnclaveExists
	}
	return idx, err
}

// execDeleteEnclave runs on the leader: it deletes the enclave's keys from
// the keystore, then the enclave with its keys, policies and identities
// from every node in one apply. It holds the enclave's lock exclusively
// from listing the keystore through the apply, so no key create of the
// enclave is in between (see enclaveLocks).
func (s *Service) execDeleteEnclave(ctx context.Context, op Op) (uint64, error) {
	if op.Enclave == DefaultEnclave {
		return 0, errCannotDeleteDefault
	}
	unlock := s.locks.exclusive(op.Enclave)
	defer unlock()
	if _, ok := s.cfg.FSM.Enclave(op.Enclave); !ok {
		return 0, kes.ErrEnclaveNotFound
	}
	if s.cfg.FSM.ProtectedCount(op.Enclave) > 0 {
		return 0, errEnclaveProtected
	}
	if err := s.checkEnclaveDeletable(ctx, op.Enclave); err != nil {
		return 0, err
	}
	if _, err := s.clearNamespace(ctx, op.Enclave); err != nil {
		return 0, err
	}
	idx, err := s.propose(ctx, fsm.DeleteEnclave{Name: op.Enclave})
	if errors.Is(err, fsm.ErrNotFound) {
		return idx, kes.ErrEnclaveNotFound
	}
	if err == nil {
		s.settle(ctx, idx)
	}
	return idx, err
}

// barrier returns once this node, the leader, has applied every entry
// committed before it was called: it applies an fsm.Barrier. A new leader may not yet have applied its predecessor's last
// entries, so its FSM could still show a deleted enclave, or miss a
// created one.
func (s *Service) barrier(ctx context.Context) error {
	_, err := s.propose(ctx, fsm.Barrier{})
	return err
}

// clearNamespace deletes every keystore entry in a non-default enclave's
// namespace and returns how many it deleted. It refuses the default
// enclave (see enclaveNamespace); keystore failures are 502 kes.Errors.
func (s *Service) clearNamespace(ctx context.Context, enclave string) (int, error) {
	prefix, err := enclaveNamespace(enclave)
	if err != nil {
		return 0, err
	}
	names, err := s.cfg.Store.List(ctx, prefix)
	if err != nil {
		s.log.Error("failed to list an enclave's keys", "enclave", enclave, "error", err)
		return 0, errListFailed
	}
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) { // a keystore lists only what was asked; never trust more
			continue
		}
		switch err := s.cfg.Store.Delete(ctx, name); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.log.Error("failed to delete an enclave's key", "enclave", enclave, "error", err)
			return n, errDeleteFailed
		default:
			n++
		}
	}
	return n, nil
}

// execPolicyOp runs the policy and identity writes on the leader.
func (s *Service) execPolicyOp(ctx context.Context, op Op) (uint64, error) {
	now := s.now().UTC()
	var (
		cmd      fsm.Command
		notFound = kes.ErrPolicyNotFound
	)
	switch op.Kind {
	case OpWritePolicy:
		cmd = fsm.PutPolicy{Enclave: op.Enclave, Policy: fsm.PolicyRecord{Name: op.Name, Allow: op.Allow, Deny: op.Deny, CreatedAt: now, CreatedBy: op.Identity}}
		notFound = kes.ErrEnclaveNotFound // the enclave was deleted meanwhile
	case OpDeletePolicy:
		cmd = fsm.DeletePolicy{Enclave: op.Enclave, Name: op.Name}
	case OpAssignPolicy:
		if s.isAdmin(op.Assignee) {
			return 0, errAssignAdmin
		}
		cmd = fsm.AssignIdentity{Enclave: op.Enclave, Identity: fsm.IdentityRecord{Identity: op.Assignee, Policy: op.Name, CreatedAt: now, CreatedBy: op.Identity}}
	case OpDeleteIdentity:
		cmd, notFound = fsm.DeleteIdentity{Enclave: op.Enclave, Identity: op.Assignee}, kes.ErrIdentityNotFound
	default:
		return 0, fmt.Errorf("enclave: %q is not a policy op", op.Kind)
	}
	idx, err := s.propose(ctx, cmd)
	if errors.Is(err, fsm.ErrNotFound) {
		return idx, notFound
	}
	return idx, err
}
