package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// Cluster RPC paths (served on the cluster port, to members only).
const (
	rpcForward = "/cluster/v1/forward"
	rpcSeal    = "/cluster/v1/seal"
	rpcInfo    = "/cluster/v1/info"
	rpcJoin    = "/cluster/v1/join"
	rpcRemove  = "/cluster/v1/remove"
	rpcRemoved = "/cluster/v1/removed"
)

// rpcHandler serves the cluster RPC channel. The cluster node checks
// that the caller is a current member before every request.
func (s *Server) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+rpcForward, func(w http.ResponseWriter, r *http.Request) {
		var op enclave.Op
		if !decodeRPC(w, r, &op) {
			return
		}
		if !s.node.IsLeader() {
			http.Error(w, "not the leader", http.StatusServiceUnavailable)
			return
		}
		res, err := s.svc.Execute(r.Context(), op)
		if err != nil {
			s.log.Error("forwarded operation failed", "op", op.Kind, "error", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		writeRPC(w, res)
	})
	mux.HandleFunc("POST "+rpcSeal, func(w http.ResponseWriter, r *http.Request) {
		var req sealRequest
		if !decodeRPC(w, r, &req) {
			return
		}
		key, err := s.svc.SealKey(req.ID)
		if err != nil {
			http.Error(w, "sealed", http.StatusServiceUnavailable)
			return
		}
		defer clear(key)
		writeRPC(w, sealResponse{Key: key})
	})
	mux.HandleFunc("POST "+rpcInfo, func(w http.ResponseWriter, _ *http.Request) {
		writeRPC(w, s.node.Info())
	})
	mux.HandleFunc("POST "+rpcRemoved, s.serveRemoved)
	mux.HandleFunc("POST "+rpcApplied, s.serveApplied)
	mux.HandleFunc("POST "+rpcJoin, func(w http.ResponseWriter, r *http.Request) {
		var m joinRPC
		if !decodeRPC(w, r, &m) {
			return
		}
		members, err := s.execJoin(r.Context(), m.Member, m.Readmit)
		if err != nil {
			writeRPCError(w, err)
			return
		}
		writeRPC(w, members)
	})
	mux.HandleFunc("POST "+rpcRemove, func(w http.ResponseWriter, r *http.Request) {
		var req struct{ ID string }
		if !decodeRPC(w, r, &req) {
			return
		}
		if err := s.execRemove(r.Context(), req.ID); err != nil {
			writeRPCError(w, err)
			return
		}
		writeRPC(w, struct{}{})
	})
	return mux
}

// sealRequest asks for the seal key with a fingerprint ("" for the one
// the member seals with).
type sealRequest struct {
	ID string `json:"id,omitempty"`
}

type sealResponse struct {
	Key []byte `json:"key"`
}

func decodeRPC(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeRPC(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeRPCError(w http.ResponseWriter, err error) {
	var ke kes.Error
	switch {
	case errors.As(err, &ke):
		http.Error(w, ke.Message, ke.Code)
	case errors.Is(err, cluster.ErrNotLeader):
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// forwarder sends leader operations over the cluster RPC channel. While
// there is no leader, or the node it reached stopped leading, it retries
// for a bounded time and then gives up (the caller answers 503).
type forwarder struct {
	node func() *cluster.Node
	wait time.Duration
}

func (f *forwarder) Forward(ctx context.Context, op enclave.Op) (enclave.Result, error) {
	var res enclave.Result
	err := retryLeader(ctx, f.wait, func() error {
		return f.node().CallLeader(ctx, f.wait, rpcForward, op, &res)
	})
	return res, err
}

// retryLeader retries fn while the failure means "no leader right now".
func retryLeader(ctx context.Context, wait time.Duration, fn func() error) error {
	deadline := time.Now().Add(wait)
	backoff := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !leaderTrouble(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		if backoff < 500*time.Millisecond {
			backoff *= 2
		}
	}
}

func leaderTrouble(err error) bool {
	var re *cluster.RPCError
	if errors.As(err, &re) {
		return re.Status == http.StatusServiceUnavailable
	}
	// Anything else that is not an answer (a refused or dropped
	// connection) means the leader went away: try the next one.
	return true
}
