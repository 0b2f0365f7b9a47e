package api

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// Cluster is the membership and backup API of a node (Keyraft's
// /v1/cluster/* routes, which KES does not have). *server.Server
// implements it. Methods are safe for concurrent use and return kes.Error
// values for client-visible failures.
type Cluster interface {
	// Join adds the caller (identity = its certificate identity) as a
	// member. The implementation authorizes the caller itself: the cluster
	// admin, a policy allowing /v1/cluster/join, or a member the admin
	// added before. Joining is idempotent.
	Join(ctx context.Context, req ClusterMember, identity string) ([]ClusterMember, error)
	// Add adds a member on the admin's behalf (keyraft cluster add).
	Add(ctx context.Context, m ClusterMember) ([]ClusterMember, error)
	// Remove removes a member; its id can never be used again.
	Remove(ctx context.Context, id string) error
	// Status describes every member as this node sees it.
	Status(ctx context.Context) (ClusterStatus, error)
	// SaveSnapshot writes a backup of the replicated state to w.
	SaveSnapshot(ctx context.Context, w io.Writer) error
	// RestoreSnapshot replaces the replicated state, cluster-wide.
	RestoreSnapshot(ctx context.Context, r io.Reader) error
	// RotateSeal begins a seal-key rotation (or joins the one in
	// progress) on identity's behalf and returns at once with its status;
	// the leader re-seals in the background.
	RotateSeal(ctx context.Context, identity string) (enclave.SealStatus, error)
}

// ClusterMember is a member's identity and addresses.
type ClusterMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Identity string `json:"identity,omitempty"`
}

// ClusterStatus is GET /v1/cluster/status.
type ClusterStatus struct {
	Leader  string             `json:"leader"`
	Node    string             `json:"node"`
	Members []ClusterNodeState `json:"members"`
	// Seal is the seal key's fingerprint, when it was rotated in, and a
	// rotation in progress.
	Seal enclave.SealStatus `json:"seal"`
}

// ClusterNodeState is one member's state; fields a member did not answer
// for are empty and Error says why.
type ClusterNodeState struct {
	ClusterMember
	Voter        bool      `json:"voter"`
	State        string    `json:"state,omitempty"`
	Term         uint64    `json:"term,omitempty"`
	AppliedIndex uint64    `json:"applied_index,omitempty"`
	LastContact  time.Time `json:"last_contact,omitzero"`
	Error        string    `json:"error,omitempty"`
}

const maxSnapshot = 1 << 30

// clusterRoutes returns the /v1/cluster/* routes.
func clusterRoutes() []*route {
	const s15, s60 = 15 * time.Second, 60 * time.Second
	return []*route{
		{method: http.MethodPost, path: "/v1/cluster/join", maxBody: 1 << 16, timeout: s60, auth: authIdentify, audited: true, handle: (*Server).clusterJoin, failMsg: "failed to join the cluster"},
		{method: http.MethodPost, path: "/v1/cluster/add", maxBody: 1 << 16, timeout: s60, audited: true, handle: (*Server).clusterAdd, failMsg: "failed to add the member"},
		{method: http.MethodDelete, path: "/v1/cluster/remove/", prefix: true, timeout: s60, audited: true, handle: (*Server).clusterRemove, failMsg: "failed to remove the member"},
		{method: http.MethodGet, path: "/v1/cluster/status", timeout: s15, audited: true, handle: (*Server).clusterStatus, failMsg: "failed to read the cluster status"},
		{method: http.MethodGet, path: "/v1/cluster/snapshot", timeout: 10 * time.Minute, audited: true, handle: (*Server).clusterSnapshot, failMsg: "failed to save a snapshot"},
		{method: http.MethodPost, path: "/v1/cluster/seal/rotate", timeout: s60, audited: true, handle: (*Server).clusterRotateSeal, failMsg: "failed to rotate the seal key"},
		{method: http.MethodPost, path: "/v1/cluster/restore", maxBody: maxSnapshot, timeout: 10 * time.Minute, audited: true, handle: (*Server).clusterRestore, failMsg: "failed to restore the snapshot"},
	}
}

func (s *Server) clusterJoin(w http.ResponseWriter, req *request) error {
	if req.identErr != nil {
		return req.identErr
	}
	return s.addMember(w, req, func(ctx context.Context, m ClusterMember) ([]ClusterMember, error) {
		return s.cluster.Join(ctx, m, req.identity)
	})
}

func (s *Server) clusterAdd(w http.ResponseWriter, req *request) error {
	return s.addMember(w, req, s.cluster.Add)
}

// addMember decodes a member from the body, adds it with add and answers
// with the members.
func (s *Server) addMember(w http.ResponseWriter, req *request, add func(context.Context, ClusterMember) ([]ClusterMember, error)) error {
	var m ClusterMember
	if _, err := decodeBody(req.Request, &m); err != nil {
		return err
	}
	members, err := add(req.Context(), m)
	if err != nil {
		return err
	}
	writeJSON(w, struct {
		Members []ClusterMember `json:"members"`
	}{members})
	return nil
}

func (s *Server) clusterRemove(w http.ResponseWriter, req *request) error {
	if req.resource == "" {
		return kes.Error{Code: http.StatusBadRequest, Message: "member id is empty"}
	}
	if err := s.cluster.Remove(req.Context(), req.resource); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) clusterStatus(w http.ResponseWriter, req *request) error {
	st, err := s.cluster.Status(req.Context())
	if err != nil {
		return err
	}
	writeJSON(w, st)
	return nil
}

func (s *Server) clusterSnapshot(w http.ResponseWriter, req *request) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	// Once bytes are written a failure can only break the connection;
	// SaveSnapshot checks everything it can before writing.
	return s.cluster.SaveSnapshot(req.Context(), w)
}

func (s *Server) clusterRotateSeal(w http.ResponseWriter, req *request) error {
	st, err := s.cluster.RotateSeal(req.Context(), req.identity)
	if err != nil {
		return err
	}
	writeJSON(w, st)
	return nil
}

func (s *Server) clusterRestore(w http.ResponseWriter, req *request) error {
	if err := s.cluster.RestoreSnapshot(req.Context(), req.Body); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}
