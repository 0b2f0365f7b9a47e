package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyraft/keyraft/api"
	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

var (
	errRemovedID       = kes.Error{Code: 400, Message: "node id was removed from the cluster and cannot be reused"}
	errRevokedIdentity = kes.Error{Code: 403, Message: "identity belongs to a removed member: an admin must re-authorize it with 'keyraft cluster add'"}
)

// joinRPC is a join forwarded to the leader. Readmit says that the caller
// was authorized to add members (keyraft cluster add), which re-authorizes
// an identity of a removed member; a self-service join never does.
type joinRPC struct {
	fsm.Member
	Readmit bool `json:"readmit,omitempty"`
}

// JoinRequest is what a joining node sends to /v1/cluster/join.
type JoinRequest = api.ClusterMember

// JoinResponse lists the members the joining node must trust.
type JoinResponse struct {
	Members []api.ClusterMember `json:"members"`
}

// addMember runs on the leader, or is forwarded to it. Adding is
// idempotent. readmit allows an identity of a removed member (an explicit
// re-authorization by a caller allowed to add members).
func (s *Server) addMember(ctx context.Context, m fsm.Member, readmit bool) ([]fsm.Member, error) {
	if m.ID == "" || m.RaftAddr == "" || m.Identity == "" {
		return nil, kes.Error{Code: 400, Message: "invalid member: id, raft_addr and identity are required"}
	}
	if s.node.IsLeader() {
		return s.execJoin(ctx, m, readmit)
	}
	var members []fsm.Member
	err := retryLeader(ctx, leaderWait, func() error {
		return s.node.CallLeader(ctx, leaderWait, rpcJoin, joinRPC{Member: m, Readmit: readmit}, &members)
	})
	return members, rpcToKES(err)
}

// removeMember removes a member and retires its id. Runs on the leader,
// or is forwarded to it.
func (s *Server) removeMember(ctx context.Context, id string) error {
	if s.node.IsLeader() {
		return s.execRemove(ctx, id)
	}
	err := retryLeader(ctx, leaderWait, func() error {
		return s.node.CallLeader(ctx, leaderWait, rpcRemove, struct{ ID string }{id}, nil)
	})
	return rpcToKES(err)
}

const leaderWait = 5 * time.Second

func (s *Server) execJoin(ctx context.Context, m fsm.Member, readmit bool) ([]fsm.Member, error) {
	if s.fsm.Removed(m.ID) {
		return nil, errRemovedID
	}
	if !readmit && s.fsm.Revoked(m.Identity) {
		return nil, errRevokedIdentity
	}
	if cur, ok := s.fsm.Member(m.ID); !ok || cur != m {
		if _, err := s.node.Apply(ctx, fsm.PutMember{Member: m}); err != nil {
			if errors.Is(err, fsm.ErrRemoved) {
				return nil, errRemovedID
			}
			return nil, err
		}
	}
	if err := s.node.AddVoter(ctx, m.ID, m.RaftAddr); err != nil {
		return nil, err
	}
	s.log.Info("member joined", "id", m.ID, "raft", m.RaftAddr)
	return s.fsm.Members(), nil
}

func (s *Server) execRemove(ctx context.Context, id string) error {
	if id == s.cfg.Cluster.NodeID && s.node.IsLeader() {
		return kes.Error{Code: 400, Message: "cannot remove the leader: transfer leadership or stop it first"}
	}
	if err := s.node.RemoveServer(ctx, id); err != nil {
		return err
	}
	// Told while it is still a recorded member (the cluster port admits
	// only members), the removed node stops serving at once.
	if m, ok := s.fsm.Member(id); ok && id != s.cfg.Cluster.NodeID {
		s.noticeRemoved(ctx, m)
	}
	if _, err := s.node.Apply(ctx, fsm.RemoveMember{ID: id}); err != nil {
		return err
	}
	s.log.Info("member removed", "id", id)
	return nil
}

func rpcToKES(err error) error {
	var re *cluster.RPCError
	if errors.As(err, &re) && re.Status < 500 {
		return kes.Error{Code: re.Status, Message: re.Message}
	}
	if err != nil && leaderTrouble(err) {
		return kes.Error{Code: 503, Message: "cluster has no leader: try again"}
	}
	return err
}

// registerSelf (leader) records this node as a member so peers admit it.
func (s *Server) registerSelf(ctx context.Context) error {
	me := fsm.Member{ID: s.cfg.Cluster.NodeID, RaftAddr: s.node.Address(), APIAddr: s.cfg.Cluster.APIAdvertise, Identity: s.identity}
	if cur, ok := s.fsm.Member(me.ID); ok && cur == me {
		return nil
	}
	_, err := s.node.Apply(ctx, fsm.PutMember{Member: me})
	return err
}

// joinCluster asks the configured members' APIs to add this node, retrying
// until one accepts or ctx ends. It authenticates with this node's own
// certificate; the cluster admin must have authorized that identity (a
// policy allowing /v1/cluster/join, or `keyraft cluster add`).
func (s *Server) joinCluster(ctx context.Context) error {
	req := JoinRequest{ID: s.cfg.Cluster.NodeID, RaftAddr: s.node.Address(), APIAddr: s.cfg.Cluster.APIAdvertise}
	body, _ := json.Marshal(req)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.joinTLS()}}
	defer client.CloseIdleConnections()
	backoff := 200 * time.Millisecond
	for {
		var lastErr error
		for _, ep := range s.cfg.Cluster.Join {
			resp, err := s.postJoin(ctx, client, ep, body)
			if err == nil {
				for _, m := range resp.Members {
					s.trust(m.Identity)
				}
				s.log.Info("joined the cluster", "via", ep, "members", len(resp.Members))
				return nil
			}
			lastErr = err
			var ke kes.Error
			if errors.As(err, &ke) && ke.Code < 500 && ke.Code != 403 {
				return fmt.Errorf("server: join via %s: %w", ep, err)
			}
		}
		s.log.Warn("join failed, retrying", "error", lastErr)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("server: join: %w (last error: %w)", ctx.Err(), lastErr)
		case <-t.C:
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (s *Server) postJoin(ctx context.Context, client *http.Client, endpoint string, body []byte) (JoinResponse, error) {
	url := strings.TrimSuffix(endpoint, "/") + "/v1/cluster/join"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return JoinResponse{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return JoinResponse{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = json.Unmarshal(b, &e)
		return JoinResponse{}, kes.Error{Code: resp.StatusCode, Message: e.Message}
	}
	var out JoinResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return JoinResponse{}, err
	}
	return out, nil
}

// joinTLS verifies the existing members' API certificates against tls.ca
// (and the system roots); with tls.auth off and no CA configured, as in
// KES's self-signed setups, it skips verification: the join grants the
// cluster nothing, and members are then admitted by identity.
func (s *Server) joinTLS() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return s.tls.Load(), nil
	}}
	if p := s.ca.Load().pool; p != nil {
		cfg.RootCAs = p
	} else if pool, err := x509.SystemCertPool(); err == nil && s.cfg.TLS.CA != "" {
		cfg.RootCAs = pool
	} else {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}
