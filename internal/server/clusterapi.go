package server

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/keyraft/keyraft/api"
	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

// clusterAPI implements api.Cluster over the node.
type clusterAPI struct{ s *Server }

var _ api.Cluster = clusterAPI{}

func toMember(m api.ClusterMember) fsm.Member {
	return fsm.Member{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr, Identity: m.Identity}
}

func fromMembers(ms []fsm.Member) []api.ClusterMember {
	out := make([]api.ClusterMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, api.ClusterMember{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr, Identity: m.Identity})
	}
	return out
}

// Join adds the calling node. Allowed for the cluster admin, identities
// with a policy allowing /v1/cluster/join, and members the admin added
// beforehand under this id with this identity.
func (c clusterAPI) Join(ctx context.Context, req api.ClusterMember, identity string) ([]api.ClusterMember, error) {
	pre, ok := c.s.fsm.Member(req.ID)
	preAdded := ok && pre.Identity == identity
	if !preAdded {
		if err := c.s.svc.Authorize(ctx, enclave.DefaultEnclave, identity, "/v1/cluster/join"); err != nil {
			return nil, err
		}
		// A policy that let a certificate join once does not let it back
		// in after its member was removed: removal is a revocation.
		if c.s.fsm.Revoked(identity) {
			return nil, errRevokedIdentity
		}
	}
	req.Identity = identity
	ms, err := c.s.addMember(ctx, toMember(req), false)
	return fromMembers(ms), err
}

// Add adds a member on the (already authorized) caller's behalf. This is
// the explicit re-authorization of an identity whose member was removed.
func (c clusterAPI) Add(ctx context.Context, m api.ClusterMember) ([]api.ClusterMember, error) {
	ms, err := c.s.addMember(ctx, toMember(m), true)
	return fromMembers(ms), err
}

// Remove removes a member.
func (c clusterAPI) Remove(ctx context.Context, id string) error { return c.s.removeMember(ctx, id) }

// memberInfoTimeout bounds Status's question to each member, so that a
// member whose host is gone (a dial that is never answered) shows up as an
// error instead of holding the whole answer until the client gives up.
const memberInfoTimeout = 2 * time.Second

// Status asks every member for its state (in parallel, bounded by ctx and
// memberInfoTimeout per member).
func (c clusterAPI) Status(ctx context.Context) (api.ClusterStatus, error) {
	s := c.s
	servers, err := s.node.Servers()
	if err != nil {
		return api.ClusterStatus{}, err
	}
	st := api.ClusterStatus{Node: s.cfg.Cluster.NodeID}
	if id, _, err := s.node.Leader(); err == nil {
		st.Leader = id
	}
	results := make([]api.ClusterNodeState, len(servers))
	done := make(chan struct{}, len(servers))
	for i, srv := range servers {
		results[i] = api.ClusterNodeState{ClusterMember: api.ClusterMember{ID: srv.ID, RaftAddr: srv.Address}, Voter: srv.Voter}
		if m, ok := s.fsm.Member(srv.ID); ok {
			results[i].APIAddr, results[i].Identity = m.APIAddr, m.Identity
		}
		go func(r *api.ClusterNodeState) {
			defer func() { done <- struct{}{} }()
			var info cluster.Info
			var err error
			if r.ID == s.cfg.Cluster.NodeID {
				info = s.node.Info()
			} else {
				cctx, cancel := context.WithTimeout(ctx, memberInfoTimeout)
				err = s.node.Call(cctx, r.RaftAddr, rpcInfo, struct{}{}, &info)
				cancel()
			}
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.State, r.Term, r.AppliedIndex, r.LastContact = info.State, info.Term, info.AppliedIndex, info.LastContact
		}(&results[i])
	}
	for range servers {
		<-done
	}
	st.Members = results
	st.Seal = s.svc.SealStatus()
	return st, nil
}

// RotateSeal begins or joins a seal-key rotation (see enclave.RotateSeal).
func (c clusterAPI) RotateSeal(ctx context.Context, identity string) (enclave.SealStatus, error) {
	return c.s.svc.RotateSeal(ctx, identity)
}

// SaveSnapshot writes this node's replicated state.
func (c clusterAPI) SaveSnapshot(_ context.Context, w io.Writer) error {
	snap, err := c.s.fsm.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Release()
	_, err = snap.WriteTo(w)
	return err
}

// restoreReconcileWait bounds how long a restore request waits for the
// restored keys to be reconciled with the keystore before it answers; the
// reconciliation goes on in the background after that.
const restoreReconcileWait = 30 * time.Second

// RestoreSnapshot installs a snapshot cluster-wide through the leader (see
// cluster.Node.RestoreSnapshot) and then reconciles the restored keys with
// the keystore before answering (bounded by restoreReconcileWait; until
// the reconciliation is applied, requests for restored keys answer 503 on
// every node). A snapshot that fails fsm.CheckSnapshot is answered 400
// with the reason; a node that is not (or no longer) the leader answers
// 409.
func (c clusterAPI) RestoreSnapshot(ctx context.Context, r io.Reader) error {
	if !c.s.node.IsLeader() {
		return errRestoreNotLeader
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return kes.Error{Code: 400, Message: "invalid request body"}
	}
	if err := fsm.CheckSnapshot(c.s.fsm, data); err != nil {
		return badSnapshot(err)
	}
	switch err := c.s.node.RestoreSnapshot(ctx, data); {
	case errors.Is(err, fsm.ErrBadSnapshot):
		return badSnapshot(err)
	case errors.Is(err, cluster.ErrNotLeader):
		return errRestoreNotLeader
	case err != nil:
		return err
	}
	c.s.log.Info("restored the cluster state from a snapshot; reconciling the restored keys with the keystore", "bytes", len(data))
	rctx, cancel := context.WithTimeout(ctx, restoreReconcileWait)
	defer cancel()
	if err := c.s.svc.ReconcileRestored(rctx); err != nil {
		c.s.log.Warn("restored keys are not reconciled with the keystore yet; they answer 503 until they are (retrying in the background)", "error", err)
	}
	return nil
}

var errRestoreNotLeader = kes.Error{Code: 409, Message: "restore must be sent to the leader: see keyraft cluster status"}

// badSnapshot turns a rejected snapshot into a 400 saying what is wrong.
func badSnapshot(err error) error {
	var se *fsm.SnapshotError
	if errors.As(err, &se) {
		return kes.Error{Code: 400, Message: "not a valid keyraft snapshot: " + se.Reason}
	}
	if errors.Is(err, fsm.ErrBadSnapshot) {
		return kes.Error{Code: 400, Message: "not a valid keyraft snapshot"}
	}
	return err
}
