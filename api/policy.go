package api

import (
	"net/http"
	"time"

	"github.com/keyraft/keyraft/enclave"
)

// policyName returns the request's policy name or the 400 for an invalid one.
func policyName(req *request) (string, error) {
	if !enclave.ValidName(req.resource) {
		return "", enclave.InvalidPolicyName(req.resource)
	}
	return req.resource, nil
}

// ruleSet is KES's JSON form of policy rules: pattern → {} (an object, so
// that rules can gain attributes without breaking clients).
type ruleSet map[string]struct{}

// rules converts patterns to a ruleSet; nil when there are none, so that
// the field is omitted.
func rules(patterns []string) ruleSet {
	if len(patterns) == 0 {
		return nil
	}
	set := make(ruleSet, len(patterns))
	for _, p := range patterns {
		set[p] = struct{}{}
	}
	return set
}

// policyResponse is the body of /v1/policy/read.
type policyResponse struct {
	Name      string    `json:"name"`
	Allow     ruleSet   `json:"allow,omitempty"`
	Deny      ruleSet   `json:"deny,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func newPolicyResponse(name string, p *enclave.Policy) policyResponse {
	return policyResponse{Name: name, Allow: rules(p.Allow), Deny: rules(p.Deny), CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy}
}

func (s *Server) describePolicy(w http.ResponseWriter, req *request) error {
	name, err := policyName(req)
	if err != nil {
		return err
	}
	info, err := s.backend.DescribePolicy(req.Context(), req.enclave, name)
	if err != nil {
		return err
	}
	writeJSON(w, struct {
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
	}{info.Name, info.CreatedAt, info.CreatedBy})
	return nil
}

func (s *Server) readPolicy(w http.ResponseWriter, req *request) error {
	name, err := policyName(req)
	if err != nil {
		return err
	}
	p, err := s.backend.ReadPolicy(req.Context(), req.enclave, name)
	if err != nil {
		return err
	}
	writeJSON(w, newPolicyResponse(name, &p))
	return nil
}

func (s *Server) listPolicies(w http.ResponseWriter, req *request) error {
	prefix, err := listPrefix(req.resource)
	if err != nil {
		return err
	}
	names, err := s.backend.ListPolicies(req.Context(), req.enclave, prefix)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, listResponse{Names: names})
	return nil
}
