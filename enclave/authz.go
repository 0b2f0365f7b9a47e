package enclave

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

// Authorize returns nil if identity may call path in the enclave. The
// cluster admin may call everything; an enclave's own admin everything in
// its enclave; anyone else needs a policy that allows the path (deny
// first, default deny). Denials are kes.ErrNotAllowed.
func (s *Service) Authorize(_ context.Context, enclave, identity, path string) error {
	if s.isAdmin(identity) {
		return nil
	}
	if enclave != DefaultEnclave {
		e, ok := s.cfg.FSM.Enclave(enclave)
		if !ok {
			return kes.ErrNotAllowed
		}
		if e.Admin != "" && e.Admin == identity {
			return nil
		}
	}
	id, ok := s.cfg.FSM.Identity(enclave, identity)
	if !ok {
		return kes.ErrNotAllowed
	}
	p, ok := s.cfg.FSM.Policy(enclave, id.Policy)
	if !ok {
		return kes.ErrNotAllowed
	}
	pol := Policy{Allow: p.Allow, Deny: p.Deny}
	if !pol.Verify(path) {
		return kes.ErrNotAllowed
	}
	return nil
}

// ConfigPolicy is a policy from the server config with its identities.
type ConfigPolicy struct {
	Name       string
	Allow      []string
	Deny       []string
	Identities []string
}

// SyncConfigPolicies replaces the default enclave's config-defined
// policies with the given ones in one Raft apply. Only the leader can do
// this; on a follower it returns ErrNotLeader wrapped in a 503 kes.Error.
// Policies created through the API are kept.
func (s *Service) SyncConfigPolicies(ctx context.Context, policies []ConfigPolicy) error {
	now := s.now().UTC()
	cmd := fsm.ReplacePolicies{Enclave: DefaultEnclave}
	for _, p := range policies {
		cmd.Policies = append(cmd.Policies, fsm.PolicyRecord{
			Name: p.Name, Allow: p.Allow, Deny: p.Deny, CreatedAt: now, CreatedBy: s.cfg.Admin,
		})
		for _, id := range p.Identities {
			cmd.Identities = append(cmd.Identities, fsm.IdentityRecord{
				Identity: id, Policy: p.Name, CreatedAt: now, CreatedBy: s.cfg.Admin,
			})
		}
	}
	_, err := s.propose(ctx, cmd)
	return err
}

// DescribePolicy returns a policy's metadata or kes.ErrPolicyNotFound.
func (s *Service) DescribePolicy(_ context.Context, enclave, name string) (PolicyInfo, error) {
	p, ok := s.cfg.FSM.Policy(enclave, name)
	if !ok {
		return PolicyInfo{}, kes.ErrPolicyNotFound
	}
	return PolicyInfo{Name: p.Name, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy}, nil
}

// ReadPolicy returns a policy with its rules or kes.ErrPolicyNotFound.
func (s *Service) ReadPolicy(_ context.Context, enclave, name string) (Policy, error) {
	p, ok := s.cfg.FSM.Policy(enclave, name)
	if !ok {
		return Policy{}, kes.ErrPolicyNotFound
	}
	return Policy{Allow: p.Allow, Deny: p.Deny, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy}, nil
}

// ListPolicies returns the sorted names of an enclave's policies that
// start with prefix.
func (s *Service) ListPolicies(_ context.Context, enclave, prefix string) ([]string, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return nil, err
	}
	names := []string{}
	for _, p := range s.cfg.FSM.Policies(enclave) {
		if strings.HasPrefix(p.Name, prefix) {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// DescribeIdentity describes the admin or an identity with a policy; any
// other identity is kes.ErrIdentityNotFound.
func (s *Service) DescribeIdentity(_ context.Context, enclave, identity string) (IdentityInfo, error) {
	if s.isAdmin(identity) {
		return IdentityInfo{Identity: identity, IsAdmin: true, CreatedAt: s.startedAt()}, nil
	}
	r, ok := s.cfg.FSM.Identity(enclave, identity)
	if !ok {
		return IdentityInfo{}, kes.ErrIdentityNotFound
	}
	return IdentityInfo{Identity: identity, Policy: r.Policy, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}, nil
}

// ListIdentities returns the sorted identities of an enclave that start
// with prefix, including the admin identity (as KES does).
func (s *Service) ListIdentities(_ context.Context, enclave, prefix string) ([]string, error) {
	if err := s.enclaveExists(enclave); err != nil {
		return nil, err
	}
	ids := []string{}
	if s.cfg.Admin != "" && strings.HasPrefix(s.cfg.Admin, prefix) {
		ids = append(ids, s.cfg.Admin)
	}
	for _, r := range s.cfg.FSM.Identities(enclave) {
		if strings.HasPrefix(r.Identity, prefix) && r.Identity != s.cfg.Admin {
			ids = append(ids, r.Identity)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// SelfDescribe describes the caller: the admin, or an identity with its
// policy. It works for every identity that has a policy (KES HEAD's
// version answered 404 for all of them); others get kes.ErrIdentityNotFound.
func (s *Service) SelfDescribe(ctx context.Context, enclave, identity string) (SelfInfo, error) {
	info, err := s.DescribeIdentity(ctx, enclave, identity)
	if err != nil {
		return SelfInfo{}, err
	}
	if info.IsAdmin {
		return SelfInfo{IdentityInfo: info}, nil
	}
	p, err := s.ReadPolicy(ctx, enclave, info.Policy)
	if err != nil {
		return SelfInfo{IdentityInfo: info}, nil
	}
	return SelfInfo{IdentityInfo: info, PolicyRules: &p}, nil
}

var processStart = time.Now().UTC()

func (s *Service) startedAt() time.Time { return processStart }
