package enclave

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

var errCannotDeleteDefault = kes.Error{Code: 400, Message: "the default enclave cannot be deleted"}

// CreateEnclave creates an enclave whose admin identity may manage its
// keys, policies and identities. It returns kes.ErrEnclaveExists if it
// exists (the default enclave always does).
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
		return kes.Error{Code: 400, Message: "the admin identity cannot be assigned to a policy"}
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

// execEnclaveOp runs the enclave, policy and identity writes on the leader.
func (s *Service) execEnclaveOp(ctx context.Context, op Op) (uint64, error) {
	now := s.now().UTC()
	var (
		cmd      fsm.Command
		notFound = kes.ErrPolicyNotFound
	)
	switch op.Kind {
	case OpCreateEnclave:
		cmd = fsm.PutEnclave{Enclave: fsm.EnclaveRecord{Name: op.Enclave, Admin: op.Admin, CreatedAt: now, CreatedBy: op.Identity}}
	case OpDeleteEnclave:
		if err := s.deleteEnclaveKeys(ctx, op.Enclave); err != nil {
			return 0, err
		}
		cmd, notFound = fsm.DeleteEnclave{Name: op.Enclave}, kes.ErrEnclaveNotFound
	case OpWritePolicy:
		cmd = fsm.PutPolicy{Enclave: op.Enclave, Policy: fsm.PolicyRecord{Name: op.Name, Allow: op.Allow, Deny: op.Deny, CreatedAt: now, CreatedBy: op.Identity}}
	case OpDeletePolicy:
		cmd = fsm.DeletePolicy{Enclave: op.Enclave, Name: op.Name}
	case OpAssignPolicy:
		cmd = fsm.AssignIdentity{Enclave: op.Enclave, Identity: fsm.IdentityRecord{Identity: op.Assignee, Policy: op.Name, CreatedAt: now, CreatedBy: op.Identity}}
	case OpDeleteIdentity:
		cmd, notFound = fsm.DeleteIdentity{Enclave: op.Enclave, Identity: op.Assignee}, kes.ErrIdentityNotFound
	}
	idx, err := s.propose(ctx, cmd)
	switch {
	case errors.Is(err, fsm.ErrExists):
		return idx, kes.ErrEnclaveExists
	case errors.Is(err, fsm.ErrNotFound):
		return idx, notFound
	}
	return idx, err
}

// deleteEnclaveKeys removes an enclave's keys from the keystore.
func (s *Service) deleteEnclaveKeys(ctx context.Context, enclave string) error {
	if _, ok := s.cfg.FSM.Enclave(enclave); !ok {
		return kes.ErrEnclaveNotFound
	}
	names, err := s.cfg.Store.List(ctx, storePrefix(enclave))
	if err != nil {
		s.log.Error("failed to list an enclave's keys", "enclave", enclave, "error", err)
		return errListFailed
	}
	for _, n := range names {
		if err := s.cfg.Store.Delete(ctx, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("failed to delete an enclave's key", "enclave", enclave, "error", err)
			return errDeleteFailed
		}
	}
	return nil
}
