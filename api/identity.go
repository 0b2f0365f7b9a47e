package api

import (
	"net/http"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

func (s *Server) describeIdentity(w http.ResponseWriter, req *request) error {
	id := req.resource
	if !enclave.ValidName(id) {
		return enclave.InvalidIdentity(id)
	}
	info, err := s.backend.DescribeIdentity(req.Context(), req.enclave, id)
	if err != nil {
		return err
	}
	writeJSON(w, struct {
		Policy    string    `json:"policy,omitempty"`
		Admin     bool      `json:"admin,omitempty"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
	}{info.Policy, info.IsAdmin, info.CreatedAt, info.CreatedBy})
	return nil
}

// listIdentities lists identities by pattern; the backend includes the
// enclave's admin identity when it matches.
func (s *Server) listIdentities(w http.ResponseWriter, req *request) error {
	prefix, err := listPrefix(req.resource)
	if err != nil {
		return err
	}
	ids, err := s.backend.ListIdentities(req.Context(), req.enclave, prefix)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, struct {
		Identities []string `json:"identities"`
	}{ids})
	return nil
}

// selfDescribe describes the caller, whoever it is (KES answered 404 for
// every non-admin). A caller without a usable certificate gets the
// identification error.
//
// The admin gets {"identity","admin":true,"created_at"}. Everyone else gets
// the shape of the KES SDK that MinIO ships (kms-go's DescribeSelf, spec
// §1.6): "policy" is the policy's name and its rules are the top-level
// "allow" and "deny" sets, next to "identity", "admin" (false),
// "created_at" and "created_by". An identity without a policy gets neither
// "policy" nor rules.
func (s *Server) selfDescribe(w http.ResponseWriter, req *request) error {
	if req.identity == "" {
		if req.identErr != nil {
			return req.identErr
		}
		return kes.ErrIdentityNotFound
	}
	info, err := s.backend.SelfDescribe(req.Context(), req.enclave, req.identity)
	if err != nil {
		return err
	}
	if info.IsAdmin {
		writeJSON(w, struct {
			Identity  string    `json:"identity"`
			Admin     bool      `json:"admin"`
			CreatedAt time.Time `json:"created_at"`
		}{req.identity, true, info.CreatedAt})
		return nil
	}
	resp := selfDescription{Identity: req.identity, CreatedAt: info.CreatedAt, CreatedBy: info.CreatedBy}
	if info.PolicyRules != nil {
		resp.Policy = info.Policy
		resp.Allow, resp.Deny = rules(info.PolicyRules.Allow), rules(info.PolicyRules.Deny)
	}
	writeJSON(w, resp)
	return nil
}

// selfDescription is a non-admin's /v1/identity/self/describe body.
type selfDescription struct {
	Identity  string    `json:"identity"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	Allow     ruleSet   `json:"allow,omitempty"`
	Deny      ruleSet   `json:"deny,omitempty"`
}
