package client

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Member is a cluster member (Keyraft's /v1/cluster API; KES has none).
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Identity string `json:"identity,omitempty"`
}

// MemberState is one member's state in a ClusterStatus.
type MemberState struct {
	Member
	Voter        bool      `json:"voter"`
	State        string    `json:"state,omitempty"`
	Term         uint64    `json:"term,omitempty"`
	AppliedIndex uint64    `json:"applied_index,omitempty"`
	LastContact  time.Time `json:"last_contact,omitzero"`
	Error        string    `json:"error,omitempty"`
}

// ClusterStatus is the answering node's view of the cluster.
type ClusterStatus struct {
	Leader  string        `json:"leader"`
	Node    string        `json:"node"`
	Members []MemberState `json:"members"`
	Seal    SealStatus    `json:"seal"`
}

// SealStatus is the cluster's seal key: its fingerprint, when a rotation
// made it the seal key, and a rotation in progress (the next key's
// fingerprint and how many records are still to be re-sealed).
type SealStatus struct {
	ID         string    `json:"id"`
	RotatedAt  time.Time `json:"rotated_at,omitzero"`
	RotatingTo string    `json:"rotating_to,omitempty"`
	Remaining  int       `json:"remaining,omitempty"`
}

// RotateSeal begins a seal-key rotation, or joins the one in progress,
// and returns its status at once; the leader re-seals in the background
// (POST /v1/cluster/seal/rotate).
func (c *Client) RotateSeal(ctx context.Context) (SealStatus, error) {
	var st SealStatus
	err := c.call(ctx, &request{method: http.MethodPost, path: "/v1/cluster/seal/rotate", idempotent: true}, &st)
	return st, err
}

// ClusterStatus returns the cluster's members, their roles and applied
// indexes, as the node that answers sees them.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	err := c.call(ctx, &request{method: http.MethodGet, path: "/v1/cluster/status", idempotent: true}, &st)
	return st, err
}

// AddMember adds a member (idempotent) and returns the members. The new
// member's Identity is the identity of the certificate it will use.
func (c *Client) AddMember(ctx context.Context, m Member) ([]Member, error) {
	body, err := jsonBody(m)
	if err != nil {
		return nil, err
	}
	var out struct {
		Members []Member `json:"members"`
	}
	err = c.call(ctx, &request{method: http.MethodPost, path: "/v1/cluster/add", body: body, idempotent: true}, &out)
	return out.Members, err
}

// RemoveMember removes a member. Its id can never be used again.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.call(ctx, &request{method: http.MethodDelete, path: resource("/v1/cluster/remove/", id)}, nil)
}

// SaveSnapshot writes a backup of the replicated state to w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, &request{method: http.MethodGet, path: "/v1/cluster/snapshot", idempotent: true, stream: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// RestoreSnapshot replaces the cluster's replicated state with a snapshot
// written by SaveSnapshot. It must be sent to the leader.
func (c *Client) RestoreSnapshot(ctx context.Context, snapshot []byte) error {
	return c.call(ctx, &request{method: http.MethodPost, path: "/v1/cluster/restore", body: snapshot}, nil)
}
