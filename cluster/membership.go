package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/keyraft/keyraft/fsm"
)

// Server is one entry of the Raft configuration.
type Server struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("cluster: configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds (or re-addresses) a voting member. It is idempotent and
// must run on the leader (else ErrNotLeader).
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id && s.Address == addr && s.Voter {
			return nil
		}
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)).Error(); err != nil {
		return fmt.Errorf("cluster: add voter %s: %w", id, mapNotLeader(err))
	}
	return nil
}

// RemoveServer removes a member from the Raft configuration. It must run on
// the leader. Removing an id that is not a member is not an error.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)).Error(); err != nil {
		return fmt.Errorf("cluster: remove %s: %w", id, mapNotLeader(err))
	}
	return nil
}

// Info is a node's own view of itself, served to peers for status.
type Info struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Term         uint64    `json:"term"`
	AppliedIndex uint64    `json:"applied_index"`
	CommitIndex  uint64    `json:"commit_index"`
	LastContact  time.Time `json:"last_contact,omitempty"`
	LeaderID     string    `json:"leader_id,omitempty"`
}

// Info returns this node's Raft state.
func (n *Node) Info() Info {
	st := n.raft.Stats()
	info := Info{ID: n.cfg.ID, State: n.raft.State().String(), AppliedIndex: n.cfg.FSM.AppliedIndex()}
	info.Term, _ = strconv.ParseUint(st["term"], 10, 64)
	info.CommitIndex, _ = strconv.ParseUint(st["commit_index"], 10, 64)
	if n.IsLeader() {
		info.LastContact = time.Now()
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		info.LastContact = lc
	}
	if id, _, err := n.Leader(); err == nil {
		info.LeaderID = id
	}
	return info
}

// RestoreSnapshot replaces the cluster's replicated state with a snapshot
// written by fsm.Snapshot.WriteTo, through Raft's user-snapshot restore, so
// every member installs it (followers by InstallSnapshot) and Raft's
// indexes stay monotonic. It must run on the leader (else an error
// wrapping ErrNotLeader).
//
// It first waits until every committed entry is applied (a barrier), then
// rewrites the image with fsm.PrepareRestore against the live state: the
// image's applied index drops below every index Raft uses afterwards, so
// every later write is applied on every node; the live membership and seal
// record replace the backup's; and the restored key records are marked
// unconfirmed until they are reconciled with the keystore (see package
// enclave). The Raft configuration is never taken from a snapshot, so a
// restore changes no membership. A snapshot fsm.PrepareRestore rejects
// yields its error (wrapping fsm.ErrBadSnapshot) and changes nothing.
//
// A write committed between the barrier and the restore is overwritten by
// the restore, like any write ordered before it. It is safe for concurrent
// use; concurrent restores are serialized by Raft.
func (n *Node) RestoreSnapshot(ctx context.Context, data []byte) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	timeout := timeoutOf(ctx)
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("cluster: restore snapshot: barrier: %w", mapNotLeader(err))
	}
	image, err := fsm.PrepareRestore(n.cfg.FSM, data)
	if err != nil {
		return err
	}
	before, err := n.Servers()
	if err != nil {
		return err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(image))}
	if err := n.raft.Restore(meta, bytes.NewReader(image), timeoutOf(ctx)); err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", mapNotLeader(err))
	}
	n.checkMembership(before)
	n.log.Info("restored a snapshot", "bytes", len(data), "applied_index", n.cfg.FSM.AppliedIndex())
	return nil
}

// checkMembership logs, after a restore, any difference between the Raft
// configuration before it and now, and Raft servers without a member
// record: neither should ever happen.
func (n *Node) checkMembership(before []Server) {
	after, err := n.Servers()
	if err != nil {
		return
	}
	if !slices.Equal(before, after) {
		n.log.Error("the Raft configuration changed during a snapshot restore", "before", before, "after", after)
	}
	for _, s := range after {
		if _, ok := n.cfg.FSM.Member(s.ID); !ok {
			n.log.Error("a Raft server has no member record after a snapshot restore", "id", s.ID)
		}
	}
}

// Call sends a JSON request over the cluster RPC channel to the member at
// addr (its cluster address) and decodes the JSON answer into out (if not
// nil). A non-2xx answer is returned as an *RPCError.
func (n *Node) Call(ctx context.Context, addr, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, body)
	if err != nil {
		return err
	}
	resp, err := n.rpcClient.Do(req)
	if err != nil {
		return fmt.Errorf("cluster: call %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &RPCError{Status: resp.StatusCode, Message: string(bytes.TrimSpace(msg))}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cluster: call %s%s: decode: %w", addr, path, err)
	}
	return nil
}

// CallLeader is Call to the current leader. With no leader it waits up to
// wait for one, then returns ErrNoLeader. If leadership moves while the
// call is under way (the old leader may be unreachable without a reset),
// the call is abandoned with an error wrapping ErrNotLeader, so the caller
// can retry with the new leader.
func (n *Node) CallLeader(ctx context.Context, wait time.Duration, path string, in, out any) error {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := n.WaitLeader(wctx); err != nil {
		return err
	}
	id, addr, err := n.Leader()
	if err != nil {
		return err
	}
	cctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				if cur, _, err := n.Leader(); err != nil || cur != id {
					stop(fmt.Errorf("%w: leadership moved away from %s", ErrNotLeader, id))
					return
				}
			}
		}
	}()
	err = n.Call(cctx, addr, path, in, out)
	if cause := context.Cause(cctx); err != nil && errors.Is(cause, ErrNotLeader) {
		return cause
	}
	return err
}

// RPCError is a failed cluster RPC answer.
type RPCError struct {
	Status  int
	Message string
}

func (e *RPCError) Error() string { return fmt.Sprintf("cluster rpc: %d %s", e.Status, e.Message) }

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return 10 * time.Second
}

func mapNotLeader(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return err
}
