package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/kes"
)

// enclaveHeader is the request header that selects an enclave (kes-go
// v0.2.x, old MinIO's MINIO_KMS_KES_ENCLAVE).
const enclaveHeader = "Kes-Enclave"

// selectEnclave returns the enclave a request names: the Kes-Enclave header,
// else the "enclave" query parameter (kes-go v0.1.0), else "default". A
// header takes precedence over a query parameter. An invalid name is a 400
// kes.Error.
func selectEnclave(r *http.Request) (string, error) {
	name := r.Header.Get(enclaveHeader)
	if name == "" && r.URL.RawQuery != "" {
		name = r.URL.Query().Get("enclave")
	}
	if name == "" {
		return enclave.DefaultEnclave, nil
	}
	if !enclave.ValidName(name) {
		return "", kes.NewError(http.StatusBadRequest, "enclave name '%s' is empty, too long or contains invalid characters", name)
	}
	return name, nil
}

// identify resolves the caller's TLS identity once per request.
func (req *request) identify() {
	if req.identified {
		return
	}
	req.identified = true
	req.identity, req.identErr = identity.FromConnectionState(req.TLS)
}

// authenticate applies the route's auth mode: /version needs nothing,
// identify-only routes record the identity if there is one, every other
// route needs an identity that Backend.Authorize accepts for the request.
func (s *Server) authenticate(req *request) error {
	req.identify()
	switch req.route.auth {
	case authNone, authIdentify:
		return nil
	}
	if req.identErr != nil {
		return req.identErr
	}
	return s.authorize(req)
}

// authorize asks the backend whether the caller may call the request path.
//
// Besides the path itself, two spellings are accepted because KES clients
// and KES's own documentation rely on them:
//
//  1. A request for a prefix route's bare path (e.g. GET /v1/key/list, what
//     kms-go sends for an empty prefix) is served like /v1/key/list/. KES
//     redirected it, so policies were checked against /v1/key/list/; the
//     KES guides grant "/v1/key/list" instead. Such a request is allowed if
//     the policy allows either form.
//  2. A policy allow entry that is exactly a prefix route's path without the
//     trailing slash (e.g. "/v1/key/bulk/decrypt" or "/v1/key/list", as in
//     the MinIO/KES guide's policy) grants that route for every resource.
//     KES matched such an entry only against the bare path, which no client
//     sends for bulk decrypt, so the entry granted nothing although it was
//     clearly meant to. The rule is deliberately narrow: only an exact
//     entry counts (no glob, no other prefix), only for prefix routes, and
//     a deny pattern matching the request path or the bare path still
//     rejects. The admin needs neither rule.
func (s *Server) authorize(req *request) error {
	ctx := req.Context()
	p := req.URL.Path
	if req.bare {
		p = req.route.path
	}
	err := s.backend.Authorize(ctx, req.enclave, req.identity, p)
	if err == nil || !req.route.prefix || !errors.Is(err, kes.ErrNotAllowed) {
		return err
	}
	bare := strings.TrimSuffix(req.route.path, "/")
	if req.bare {
		if s.backend.Authorize(ctx, req.enclave, req.identity, bare) == nil {
			return nil
		}
	}
	self, serr := s.backend.SelfDescribe(ctx, req.enclave, req.identity)
	if serr != nil || self.PolicyRules == nil {
		return err
	}
	rules := self.PolicyRules
	if !slices.Contains(rules.Allow, bare) {
		return err
	}
	for _, d := range rules.Deny {
		if enclave.Match(d, p) || enclave.Match(d, bare) {
			return err
		}
	}
	return nil
}
