package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/kes"
)

// The answers of a fenced node (see Server.fence).
var (
	errRemovedNode = kes.Error{Code: http.StatusServiceUnavailable, Message: "node was removed from the cluster and does not serve"}
	errIsolated    = kes.Error{Code: http.StatusServiceUnavailable, Message: "node has no contact with the cluster leader: try another node"}
)

// decryptRoutes are the routes a node cut off from its leader keeps
// serving after cluster.isolation_timeout, until max(isolation_timeout,
// cache.expiry.offline): they create nothing new under a key. generate
// and encrypt stop at isolation_timeout, because data encrypted under a
// key the rest of the cluster may have deleted in the meantime would be
// lost with it.
func decryptRoute(route string) bool {
	return route == "/v1/key/decrypt/" || route == "/v1/key/bulk/decrypt/"
}

// removedMarker is the file, in the data directory, that a node writes
// when the leader tells it that it was removed. A node refuses to start
// while it exists: its state is frozen at its removal.
const removedMarker = "removed"

// fenceInterval is how often a node re-checks its membership and its
// contact with the leader, and sweeps the cluster connections of peers
// that are no longer members.
const fenceInterval = 250 * time.Millisecond

// authorizePeer decides who may use the cluster port, from the current
// membership only. Once the replicated state knows any member, it is the
// one authority: a removed member loses access as soon as its removal is
// applied. Before that (a node that has just joined and not yet caught
// up), the node admits itself and the members the join answer named.
func (s *Server) authorizePeer(id string) bool {
	if id == "" {
		return false
	}
	if s.fsm.HasMembers() {
		return s.fsm.IsMemberIdentity(id)
	}
	if id == s.identity {
		return true
	}
	_, ok := s.trusted.Load(id)
	return ok
}

// trust admits id on the cluster port until the replicated state knows
// the members (see authorizePeer).
func (s *Server) trust(id string) {
	if id != "" {
		s.trusted.Store(id, true)
	}
}

// fence answers an API request the node must not serve: every request
// when it was removed from the cluster or has heard no leader for longer
// than max(cluster.isolation_timeout, cache.expiry.offline); every
// request but decrypts once it has heard no leader for longer than
// cluster.isolation_timeout. Two atomic loads.
func (s *Server) fence(route string) error {
	if e := s.fenced.Load(); e != nil {
		return *e
	}
	if s.decryptOnly.Load() && !decryptRoute(route) {
		return errIsolated
	}
	return nil
}

// checkFence recomputes the fence and reports whether it changed.
func (s *Server) checkFence() {
	var next *kes.Error
	decryptOnly := false
	switch {
	case s.removedSelf.Load() || s.fsm.Removed(s.cfg.Cluster.NodeID) || !s.node.InConfiguration():
		next = &errRemovedNode
	default:
		last := s.node.LeaderContact()
		if last.IsZero() || last.Before(s.serving) {
			last = s.serving
		}
		cut := time.Since(last)
		if cut > max(s.isolationTimeout(), s.cfg.Cache.Offline) {
			next = &errIsolated
		} else if cut > s.isolationTimeout() {
			decryptOnly = true
		}
	}
	if s.decryptOnly.Swap(decryptOnly) != decryptOnly && next == nil {
		if decryptOnly {
			s.log.Error("node has no contact with the leader: it serves decrypts only", "until", "cache.expiry.offline")
		} else {
			s.log.Info("node has contact with the leader again: it serves everything")
		}
	}
	prev := s.fenced.Swap(next)
	switch {
	case prev == nil && next != nil:
		s.log.Error("node stops serving", "reason", next.Message)
	case prev != nil && next == nil:
		s.log.Info("node serves again")
	}
}

func (s *Server) isolationTimeout() time.Duration {
	if d := s.cfg.Cluster.IsolationTimeout; d > 0 {
		return d
	}
	return config.DefaultIsolationTimeout
}

// watchMembership keeps the fence current and closes the cluster
// connections of peers that are no longer members: at once when the
// membership changes, and by a periodic sweep that also covers state
// installed from a snapshot. It runs until ctx ends.
func (s *Server) watchMembership(ctx context.Context) {
	s.fsm.Subscribe(func(e fsm.Event) {
		if e.Kind == fsm.MembersChanged {
			// Closing a TLS connection may block on its close_notify
			// write; Apply must not wait for that.
			go s.node.Revoke()
		}
	})
	t := time.NewTicker(fenceInterval)
	defer t.Stop()
	for {
		s.checkFence()
		s.node.Revoke()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// markRemoved fences this node for good: the leader said it was removed.
func (s *Server) markRemoved() {
	if s.removedSelf.Swap(true) {
		return
	}
	path := filepath.Join(s.cfg.Cluster.DataDir, removedMarker)
	if err := os.WriteFile(path, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		s.log.Error("cannot record the removal", "path", path, "error", err)
	}
	s.log.Error("this node was removed from the cluster: it stops serving", "id", s.cfg.Cluster.NodeID)
	s.checkFence()
}

// checkNotRemoved refuses to start a node whose data directory says it
// was removed: its state stopped at its removal, and its id can never
// rejoin.
func checkNotRemoved(dataDir string) error {
	path := filepath.Join(dataDir, removedMarker)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("server: this node was removed from its cluster (%s exists): "+
			"to serve again, empty the data directory and join under a new node id", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// serveRemoved handles the leader's notice that this node was removed.
// Only the current leader may send it.
func (s *Server) serveRemoved(w http.ResponseWriter, r *http.Request) {
	var req struct{ ID string }
	if !decodeRPC(w, r, &req) {
		return
	}
	if req.ID != s.cfg.Cluster.NodeID {
		http.Error(w, "not this node", http.StatusBadRequest)
		return
	}
	leaderID, _, err := s.node.Leader()
	if err != nil {
		http.Error(w, "no leader known", http.StatusServiceUnavailable)
		return
	}
	leader, ok := s.fsm.Member(leaderID)
	if !ok || r.TLS == nil || len(r.TLS.PeerCertificates) != 1 || identity.Of(r.TLS.PeerCertificates[0]) != leader.Identity {
		http.Error(w, "only the leader may say so", http.StatusForbidden)
		return
	}
	s.markRemoved()
	writeRPC(w, struct{}{})
}

// noticeRemoved tells a removed member that it was removed, so that it
// stops serving at once rather than after cluster.isolation_timeout. Best
// effort: the member may be down.
func (s *Server) noticeRemoved(ctx context.Context, m fsm.Member) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.node.Call(ctx, m.RaftAddr, rpcRemoved, struct{ ID string }{m.ID}, nil); err != nil {
		s.log.Warn("could not tell the removed member; it stops serving after the isolation timeout", "id", m.ID, "error", err)
	}
}
