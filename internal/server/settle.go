package server

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/keyraft/keyraft/fsm"
)

// rpcApplied is the cluster RPC that waits until the member applied a
// Raft index.
const rpcApplied = "/cluster/v1/applied"

// settleWait bounds how long a delete waits for the other members to
// apply it. A member that does not confirm in time is unreachable or
// stuck: it stops serving by itself once it has heard no leader for
// cluster.isolation_timeout.
const settleWait = 3 * time.Second

// settle (leader) returns once every other member has applied index, so
// that no member in contact with the leader serves a deleted key after
// the delete was acknowledged. Members that do not confirm within
// settleWait are logged and not waited for (see settleWait). It never
// fails; ctx bounds it too.
func (s *Server) settle(ctx context.Context, index uint64) error {
	others := slices.DeleteFunc(s.fsm.Members(), func(m fsm.Member) bool { return m.ID == s.cfg.Cluster.NodeID })
	if len(others) == 0 {
		return nil // a single node: nobody to wait for, no commit to push
	}
	// The followers are told at once that index is committed: the
	// cluster node's Apply pushed the commit index.
	ctx, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := s.node.Call(ctx, m.RaftAddr, rpcApplied, appliedRPC{Index: index}, nil)
				if err == nil {
					return
				}
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-ctx.Done():
					t.Stop()
					s.log.Warn("a member did not confirm a delete; it stops serving after cluster.isolation_timeout without leader contact",
						"member", m.ID, "index", index, "error", err)
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

type appliedRPC struct {
	Index uint64 `json:"index"`
}

// serveApplied answers once this node has applied the requested index,
// or 503 after settleWait.
func (s *Server) serveApplied(w http.ResponseWriter, r *http.Request) {
	var req appliedRPC
	if !decodeRPC(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), settleWait)
	defer cancel()
	if err := s.fsm.WaitApplied(ctx, req.Index); err != nil {
		http.Error(w, "not applied yet", http.StatusServiceUnavailable)
		return
	}
	writeRPC(w, struct{}{})
}
