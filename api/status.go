package api

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// Errors /v1/ready answers with (kes-api.md §1.3).
var (
	errKeystoreUnreachable = kes.Error{Code: http.StatusGatewayTimeout, Message: "key store is not reachable"}
	errKeystoreUnavailable = kes.Error{Code: http.StatusBadGateway, Message: "key store is unavailable"}
)

// unreachable reports whether a KeystoreStatus error means the keystore
// could not be reached at all: it wraps store.ErrUnreachable or the health
// check ran out of time.
func unreachable(err error) bool {
	return errors.Is(err, store.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded)
}

func (s *Server) serveVersion(w http.ResponseWriter, _ *request) error {
	writeJSON(w, struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
	}{s.version, s.commit})
	return nil
}

func (s *Server) ready(w http.ResponseWriter, req *request) error {
	if _, err := s.backend.KeystoreStatus(req.Context()); err != nil {
		if unreachable(err) {
			s.log.Debug("keystore is not reachable", "error", err)
			return errKeystoreUnreachable
		}
		s.log.Warn("keystore is unavailable", "error", err)
		return errKeystoreUnavailable
	}
	writeEmpty(w)
	return nil
}

// status always answers 200; keystore trouble is reported in the body. An
// unreachable keystore sets both keystore_unreachable and
// keystore_unavailable (kms-go rejects the first without the second);
// another keystore error sets keystore_unavailable.
func (s *Server) status(w http.ResponseWriter, req *request) error {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	resp := struct {
		Version             string `json:"version"`
		OS                  string `json:"os"`
		Arch                string `json:"arch"`
		UpTime              int64  `json:"uptime"` // seconds
		CPUs                int    `json:"num_cpu"`
		UsableCPUs          int    `json:"num_cpu_used"`
		HeapAlloc           uint64 `json:"mem_heap_used"`
		StackAlloc          uint64 `json:"mem_stack_used"`
		KeystoreLatency     int64  `json:"keystore_latency,omitempty"` // milliseconds
		KeystoreUnreachable bool   `json:"keystore_unreachable,omitempty"`
		KeystoreUnavailable bool   `json:"keystore_unavailable,omitempty"`
	}{
		Version:    s.version,
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		UpTime:     int64(time.Since(s.start).Seconds()),
		CPUs:       runtime.NumCPU(),
		UsableCPUs: runtime.GOMAXPROCS(0),
		HeapAlloc:  mem.HeapAlloc,
		StackAlloc: mem.StackSys,
	}
	latency, err := s.backend.KeystoreStatus(req.Context())
	switch {
	case err == nil:
		resp.KeystoreLatency = max(latency.Milliseconds(), 1)
	case unreachable(err):
		resp.KeystoreUnreachable, resp.KeystoreUnavailable = true, true
	default:
		s.log.Warn("keystore is unavailable", "error", err)
		resp.KeystoreUnavailable = true
	}
	writeJSON(w, resp)
	return nil
}

// listAPIs answers /v1/api: method, path, max_body (bytes) and timeout
// (whole seconds) of every route.
func (s *Server) listAPIs(w http.ResponseWriter, _ *request) error {
	type api struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		MaxBody int64  `json:"max_body"`
		Timeout int64  `json:"timeout"`
	}
	infos := s.APIs()
	apis := make([]api, 0, len(infos))
	for _, i := range infos {
		apis = append(apis, api{i.Method, i.Path, i.MaxBody, int64(i.Timeout.Seconds())})
	}
	writeJSON(w, apis)
	return nil
}

// metricsHandler serves the registry in the exposition format the client's
// Accept header asks for (text by default).
func (s *Server) metricsHandler(w http.ResponseWriter, req *request) error {
	s.promHTTP.ServeHTTP(w, req.Request)
	return nil
}
