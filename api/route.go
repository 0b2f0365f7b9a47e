package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// maxBody is KES's "1 MB" request body limit: decimal, 1,000,000 bytes.
const maxBody = 1_000_000

// authMode says how a route authenticates its caller.
type authMode uint8

const (
	// authPolicy computes the TLS identity and asks Backend.Authorize.
	authPolicy authMode = iota
	// authIdentify computes the TLS identity if there is one and checks
	// nothing (KES's insecureIdentifyOnly; skip_auth routes).
	authIdentify
	// authNone needs no identity at all (/version).
	authNone
)

// handlerFunc serves one matched, authenticated request. It either writes a
// complete response and returns nil, or writes nothing and returns an error
// that the Server turns into a KES error response.
type handlerFunc func(s *Server, w http.ResponseWriter, req *request) error

// route is one entry of the route table.
type route struct {
	method  string        // expected method; POST is accepted for PUT
	path    string        // exact path, or prefix ending in '/'
	prefix  bool          // the remainder of the path is the resource
	maxBody int64         // request body limit in bytes
	timeout time.Duration // write deadline and context deadline; 0 = none
	auth    authMode
	counted bool   // counted in kes_http_request_{success,error,failure}
	audited bool   // produces an audit event
	stream  bool   // long-lived log stream: no latency/active metrics
	global  bool   // authorized in the default enclave, whatever the request selects
	failMsg string // message of the 500 answered for internal errors
	handle  handlerFunc
}

// RouteInfo describes one API route, as listed by /v1/api.
type RouteInfo struct {
	// Method is the expected HTTP method (POST is also accepted for PUT).
	Method string
	// Path is the exact path, or the route prefix (ending in '/') for
	// routes whose last path element is a name or listing pattern.
	Path string
	// MaxBody is the request body limit in bytes.
	MaxBody int64
	// Timeout is the per-request deadline; 0 means none.
	Timeout time.Duration
	// SkipAuth reports that the route only identifies its caller and does
	// not check a policy.
	SkipAuth bool
}

// RouteConfig overrides the defaults of one route (config api.<path>).
type RouteConfig struct {
	// Timeout replaces the route's timeout when greater than zero.
	Timeout time.Duration
	// SkipAuth switches the route to identify-only: the caller's identity is
	// computed when a certificate is present, but no policy is checked.
	SkipAuth bool
}

// routeTable returns KES's route table (kes-api.md §1.2) plus the 2023 bulk
// decrypt route. Every call returns fresh values that New may modify.
func routeTable() []*route {
	const (
		s10 = 10 * time.Second
		s15 = 15 * time.Second
	)
	return []*route{
		{method: http.MethodGet, path: "/version", timeout: s10, auth: authNone, audited: true, handle: (*Server).serveVersion, failMsg: "failed to read server version"},
		// /v1/ready is polled by load balancers; auditing it would flood the audit log.
		{method: http.MethodGet, path: "/v1/ready", timeout: s15, handle: (*Server).ready, failMsg: "key store is unavailable"},
		{method: http.MethodGet, path: "/v1/status", timeout: s15, audited: true, handle: (*Server).status, failMsg: "failed to read server status"},
		{method: http.MethodGet, path: "/v1/metrics", timeout: s15, handle: (*Server).metricsHandler, failMsg: "failed to gather metrics"},
		{method: http.MethodGet, path: "/v1/api", timeout: s10, audited: true, handle: (*Server).listAPIs, failMsg: "failed to list APIs"},

		{method: http.MethodPut, path: "/v1/key/create/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).createKey, failMsg: "failed to create key"},
		{method: http.MethodPut, path: "/v1/key/import/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).importKey, failMsg: "failed to import key"},
		{method: http.MethodGet, path: "/v1/key/describe/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).describeKey, failMsg: "failed to read key"},
		{method: http.MethodGet, path: "/v1/key/list/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).listKeys, failMsg: "failed to list keys"},
		{method: http.MethodDelete, path: "/v1/key/delete/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).deleteKey, failMsg: "failed to delete key"},
		{method: http.MethodPut, path: "/v1/key/generate/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).generateKey, failMsg: "failed to generate encryption key"},
		{method: http.MethodPut, path: "/v1/key/encrypt/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).encrypt, failMsg: "failed to encrypt plaintext"},
		{method: http.MethodPut, path: "/v1/key/decrypt/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).decrypt, failMsg: "failed to decrypt ciphertext"},
		{method: http.MethodPost, path: "/v1/key/bulk/decrypt/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).bulkDecrypt, failMsg: "failed to decrypt ciphertext"},
		{method: http.MethodPut, path: "/v1/key/protect/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).protectKey, failMsg: "failed to change key protection"},
		{method: http.MethodPut, path: "/v1/key/rotate/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).rotateKey, failMsg: "failed to rotate key"},
		{method: http.MethodPut, path: "/v1/key/min-version/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).setMinVersion, failMsg: "failed to set the minimum version"},
		{method: http.MethodDelete, path: "/v1/key/version/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).destroyVersion, failMsg: "failed to destroy the key version"},
		{method: http.MethodPut, path: "/v1/key/rewrap/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).rewrap, failMsg: "failed to rewrap ciphertext"},
		{method: http.MethodGet, path: "/v1/key/deleted/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).deletedKeys, failMsg: "failed to list keys"},
		{method: http.MethodPut, path: "/v1/key/restore/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).restoreKey, failMsg: "failed to restore key"},
		{method: http.MethodDelete, path: "/v1/key/purge/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).purgeKey, failMsg: "failed to delete key"},
		{method: http.MethodPut, path: "/v1/key/hmac/", prefix: true, maxBody: maxBody, timeout: s15, counted: true, audited: true, handle: (*Server).hmac, failMsg: "failed to compute HMAC"},

		{method: http.MethodGet, path: "/v1/policy/describe/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).describePolicy, failMsg: "failed to read policy"},
		{method: http.MethodGet, path: "/v1/policy/read/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).readPolicy, failMsg: "failed to read policy"},
		{method: http.MethodGet, path: "/v1/policy/list/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).listPolicies, failMsg: "failed to list policies"},

		{method: http.MethodGet, path: "/v1/identity/describe/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).describeIdentity, failMsg: "failed to read identity"},
		{method: http.MethodGet, path: "/v1/identity/list/", prefix: true, timeout: s15, counted: true, audited: true, handle: (*Server).listIdentities, failMsg: "failed to list identities"},
		{method: http.MethodGet, path: "/v1/identity/self/describe", timeout: s15, auth: authIdentify, counted: true, audited: true, handle: (*Server).selfDescribe, failMsg: "failed to describe identity"},

		// The log streams are not audited: an audit subscriber would
		// otherwise see its own request only when it ends.
		{method: http.MethodGet, path: "/v1/log/error", stream: true, handle: (*Server).logError, failMsg: "failed to stream error log"},
		{method: http.MethodGet, path: "/v1/log/audit", stream: true, handle: (*Server).logAudit, failMsg: "failed to stream audit log"},
	}
}

// router resolves request paths to routes.
type router struct {
	all      []*route          // in table order
	exact    map[string]*route // exact paths
	prefixes []*route          // prefix routes, longest first
	bare     map[string]*route // prefix path without its trailing '/'
}

// newRouter builds a router from the table and applies the overrides. It
// returns an error naming any override whose path is not a route.
func newRouter(table []*route, overrides map[string]RouteConfig) (*router, error) {
	rt := &router{all: table, exact: map[string]*route{}, bare: map[string]*route{}}
	for _, r := range table {
		if r.prefix {
			rt.prefixes = append(rt.prefixes, r)
			rt.bare[strings.TrimSuffix(r.path, "/")] = r
		} else {
			rt.exact[r.path] = r
		}
	}
	// Longest prefix first, so that a future nested prefix wins.
	sort.SliceStable(rt.prefixes, func(i, j int) bool { return len(rt.prefixes[i].path) > len(rt.prefixes[j].path) })

	for p, o := range overrides {
		r := rt.exact[p]
		if r == nil {
			r = rt.bare[strings.TrimSuffix(p, "/")]
		}
		if r == nil {
			return nil, fmt.Errorf("api: route override for unknown path %q", p)
		}
		if o.Timeout > 0 {
			r.timeout = o.Timeout
		}
		if o.SkipAuth && r.auth == authPolicy {
			r.auth = authIdentify
		}
	}
	return rt, nil
}

// match returns the route serving the decoded path p, the resource (the
// remainder after a prefix route's path) and whether p was a prefix route's
// bare path without the trailing slash (e.g. "/v1/key/list"), which is
// served like the route with an empty resource. It returns nil if no route
// serves p.
func (rt *router) match(p string) (r *route, resource string, bare bool) {
	if r := rt.exact[p]; r != nil {
		return r, "", false
	}
	for _, r := range rt.prefixes {
		if res, ok := strings.CutPrefix(p, r.path); ok {
			return r, res, false
		}
	}
	if r := rt.bare[p]; r != nil {
		return r, "", true
	}
	return nil, "", false
}

// allows reports whether the route accepts the request method.
func (r *route) allows(method string) bool {
	return method == r.method || (r.method == http.MethodPut && method == http.MethodPost)
}

// bodyLimit is the number of body bytes the route reads: the smaller of the
// route's limit and a known Content-Length.
func (r *route) bodyLimit(contentLength int64) int64 {
	if contentLength >= 0 && contentLength < r.maxBody {
		return contentLength
	}
	return r.maxBody
}

// info returns the route's public description.
func (r *route) info() RouteInfo {
	return RouteInfo{Method: r.method, Path: r.path, MaxBody: r.maxBody, Timeout: r.timeout, SkipAuth: r.auth != authPolicy}
}
