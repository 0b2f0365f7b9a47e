package api

import (
	"context"
	"net/http"
	"time"

	"github.com/keyraft/keyraft/enclave"
)

// Enclaves is the management API of enclaves, policies and identities
// (the routes KES's 2023 stateful mode had). *enclave.Service implements
// it. Methods are safe for concurrent use; client-visible failures are
// kes.Error values. identity is the caller, recorded as creator.
type Enclaves interface {
	CreateEnclave(ctx context.Context, name, admin, identity string) error
	DescribeEnclave(ctx context.Context, name string) (enclave.EnclaveInfo, error)
	ListEnclaves(ctx context.Context, prefix string) ([]string, error)
	DeleteEnclave(ctx context.Context, name, identity string) error
	WritePolicy(ctx context.Context, enclaveName, name string, allow, deny []string, identity string) error
	DeletePolicy(ctx context.Context, enclaveName, name, identity string) error
	AssignPolicy(ctx context.Context, enclaveName, policy, assignee, identity string) error
	DeleteIdentity(ctx context.Context, enclaveName, assignee, identity string) error
}

// enclaveRoutes returns the enclave, policy-write and identity-delete
// routes. Enclave routes are authorized in the default enclave.
func enclaveRoutes() []*route {
	const s15 = 15 * time.Second
	return []*route{
		{method: http.MethodPost, path: "/v1/enclave/create/", prefix: true, maxBody: 1 << 16, timeout: s15, global: true, counted: true, audited: true, handle: (*Server).createEnclave, failMsg: "failed to create enclave"},
		{method: http.MethodGet, path: "/v1/enclave/describe/", prefix: true, timeout: s15, global: true, counted: true, audited: true, handle: (*Server).describeEnclave, failMsg: "failed to describe enclave"},
		{method: http.MethodGet, path: "/v1/enclave/list/", prefix: true, timeout: s15, global: true, counted: true, audited: true, handle: (*Server).listEnclaves, failMsg: "failed to list enclaves"},
		{method: http.MethodDelete, path: "/v1/enclave/delete/", prefix: true, timeout: s15, global: true, counted: true, audited: true, handle: (*Server).deleteEnclave, failMsg: "failed to delete enclave"},
		{method: http.MethodPost, path: "/v1/policy/write/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).writePolicy, failMsg: "failed to write policy"},
		{method: http.MethodDelete, path: "/v1/policy/delete/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).deletePolicy, failMsg: "failed to delete policy"},
		{method: http.MethodPost, path: "/v1/policy/assign/", prefix: true, maxBody: 1 << 16, timeout: s15, counted: true, audited: true, handle: (*Server).assignPolicy, failMsg: "failed to assign policy"},
		{method: http.MethodDelete, path: "/v1/identity/delete/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).deleteIdentity, failMsg: "failed to delete identity"},
	}
}

func enclaveName(req *request) (string, error) {
	if !enclave.ValidName(req.resource) {
		return "", enclave.InvalidEnclaveName(req.resource)
	}
	return req.resource, nil
}

func (s *Server) createEnclave(w http.ResponseWriter, req *request) error {
	name, err := enclaveName(req)
	if err != nil {
		return err
	}
	var body struct {
		Admin string `json:"admin"`
	}
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	if !enclave.ValidName(body.Admin) {
		return enclave.InvalidIdentity(body.Admin)
	}
	if err := s.enclaves.CreateEnclave(req.Context(), name, body.Admin, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) describeEnclave(w http.ResponseWriter, req *request) error {
	name, err := enclaveName(req)
	if err != nil {
		return err
	}
	info, err := s.enclaves.DescribeEnclave(req.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, struct {
		Name      string    `json:"name"`
		Admin     string    `json:"admin,omitempty"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
	}{info.Name, info.Admin, info.CreatedAt, info.CreatedBy})
	return nil
}

func (s *Server) listEnclaves(w http.ResponseWriter, req *request) error {
	prefix, err := listPrefix(req.resource)
	if err != nil {
		return err
	}
	names, err := s.enclaves.ListEnclaves(req.Context(), prefix)
	if err != nil {
		return err
	}
	writeJSON(w, listResponse{Names: names})
	return nil
}

func (s *Server) deleteEnclave(w http.ResponseWriter, req *request) error {
	name, err := enclaveName(req)
	if err != nil {
		return err
	}
	if err := s.enclaves.DeleteEnclave(req.Context(), name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) writePolicy(w http.ResponseWriter, req *request) error {
	name, err := policyName(req)
	if err != nil {
		return err
	}
	var body struct {
		Allow []string `json:"allow"`
		Deny  []string `json:"deny"`
	}
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	if err := s.enclaves.WritePolicy(req.Context(), req.enclave, name, body.Allow, body.Deny, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) deletePolicy(w http.ResponseWriter, req *request) error {
	name, err := policyName(req)
	if err != nil {
		return err
	}
	if err := s.enclaves.DeletePolicy(req.Context(), req.enclave, name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) assignPolicy(w http.ResponseWriter, req *request) error {
	name, err := policyName(req)
	if err != nil {
		return err
	}
	var body struct {
		Identity string `json:"identity"`
	}
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	if !enclave.ValidName(body.Identity) {
		return enclave.InvalidIdentity(body.Identity)
	}
	if err := s.enclaves.AssignPolicy(req.Context(), req.enclave, name, body.Identity, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) deleteIdentity(w http.ResponseWriter, req *request) error {
	if !enclave.ValidName(req.resource) {
		return enclave.InvalidIdentity(req.resource)
	}
	if err := s.enclaves.DeleteIdentity(req.Context(), req.enclave, req.resource, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}
