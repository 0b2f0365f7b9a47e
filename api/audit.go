package api

import (
	"encoding/json"
	"net"
	"time"
)

// auditEvent is one audit line (kes-api.md §1.7, plus the enclave).
type auditEvent struct {
	Time     time.Time     `json:"time"`
	Request  auditRequest  `json:"request"`
	Response auditResponse `json:"response"`
}

type auditRequest struct {
	IP       string `json:"ip"`
	Path     string `json:"path"`
	Identity string `json:"identity"`
	Enclave  string `json:"enclave,omitempty"`
	// Version is the key version the request used, when it is 2 or more
	// (Keyraft's key versions; absent for version 1, as KES writes it).
	Version int `json:"version,omitempty"`
}

type auditResponse struct {
	Code int   `json:"code"`
	Time int64 `json:"time"` // milliseconds, as KES writes it
}

// audit records a finished request: one JSON line to the audit output and
// to every /v1/log/audit subscriber. Requests for /v1/ready, /v1/metrics
// and the log streams are not audited (see routeTable); requests for
// unknown paths are, with the identity if the client sent a certificate.
func (s *Server) audit(req *request, code int, start time.Time) {
	if s.auditOut == nil && s.auditStream.Subscribers() == 0 {
		return
	}
	req.identify()
	ip := req.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	s.writeAudit(auditEvent{
		Time:     time.Now().UTC(),
		Request:  auditRequest{IP: ip, Path: req.URL.Path, Identity: req.identity, Enclave: req.enclave, Version: req.version},
		Response: auditResponse{Code: code, Time: time.Since(start).Milliseconds()},
	})
}

// AuditAction records an action the cluster took on its own, not at a
// client's request (a purge at the end of a recovery window), as an audit
// line for path with response code 200 and no client IP. Safe for
// concurrent use.
func (s *Server) AuditAction(enclave, path, identity string) {
	if s.auditOut == nil && s.auditStream.Subscribers() == 0 {
		return
	}
	s.writeAudit(auditEvent{
		Time:     time.Now().UTC(),
		Request:  auditRequest{Path: path, Identity: identity, Enclave: enclave},
		Response: auditResponse{Code: 200},
	})
}

func (s *Server) writeAudit(ev auditEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		return // plain strings and numbers always encode
	}
	b = append(b, '\n')
	if s.auditOut != nil {
		s.auditMu.Lock()
		_, _ = s.auditOut.Write(b) // a broken audit console must not fail requests
		s.auditMu.Unlock()
	}
	s.auditStream.Publish(b)
}
