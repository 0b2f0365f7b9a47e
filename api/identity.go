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
		return kes.NewError(http.StatusBadRequest, "identity '%s' is empty, too long or contains invalid characters", id)
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
	var policy *policyResponse
	if info.PolicyRules != nil {
		p := newPolicyResponse(info.Policy, info.PolicyRules)
		policy = &p
	}
	writeJSON(w, struct {
		Identity  string          `json:"identity"`
		CreatedAt time.Time       `json:"created_at"`
		CreatedBy string          `json:"created_by,omitempty"`
		Policy    *policyResponse `json:"policy,omitempty"`
	}{req.identity, info.CreatedAt, info.CreatedBy, policy})
	return nil
}
