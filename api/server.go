package api

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// streamBuffer is how many events a log-stream subscriber may lag behind
// before further events are dropped for it.
const streamBuffer = 256

// Config configures a Server. Only Backend is required.
type Config struct {
	// Backend serves the domain operations. Required.
	Backend Backend
	// Logger receives internal errors (with their full text) and debug
	// information. nil means no logging. The Server logs through a sub-logger
	// named "api".
	Logger hclog.Logger
	// Routes overrides route defaults by path (config api.<path>), e.g.
	// "/v1/status" or "/v1/key/create/" (the trailing slash of a prefix
	// route may be omitted).
	Routes map[string]RouteConfig
	// AuditOut receives one JSON audit line per audited request. nil means
	// os.Stdout; io.Discard turns console auditing off. Writes are
	// serialized; write errors are ignored.
	AuditOut io.Writer
	// Version and Commit are reported by /version and /v1/status; empty
	// means "<unknown>".
	Version, Commit string
	// Enclaves serves the enclave management routes (/v1/enclave/*,
	// /v1/policy/{write,assign,delete}, /v1/identity/delete); nil leaves
	// them out.
	Enclaves Enclaves
	// Cluster serves the /v1/cluster/* routes; nil leaves them out.
	Cluster Cluster
	// Registry is the Prometheus registry /v1/metrics exposes; the Server
	// registers the KES metrics in it. nil means a new private registry, so
	// that many Servers can coexist in one process.
	Registry *prometheus.Registry
	// Fence, if set, is asked before every request (after the route and
	// method checks) whether this node may serve the route (its path
	// pattern, e.g. "/v1/key/decrypt/"); a non-nil error, normally a 503
	// kes.Error, is the answer. /version, /v1/metrics and
	// /v1/cluster/status are always served, so that a fenced node can be
	// diagnosed. It is called on every request, so it must be cheap (an
	// atomic load) and safe for concurrent use.
	Fence func(route string) error
	// MaxRequestsPerIdentity, if positive, caps the requests one client
	// identity may have in progress at a time; a request beyond it is
	// answered 429 "too many requests" before its body is read. Requests
	// without an identity (/version, identify-only routes without a
	// certificate) are not counted. Zero means no limit.
	MaxRequestsPerIdentity int
}

// Server is the KES v1 HTTP API. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	backend  Backend
	cluster  Cluster
	enclaves Enclaves
	log      hclog.Logger
	version  string
	commit   string
	router   *router
	start    time.Time
	registry *prometheus.Registry
	metrics  *metrics
	promHTTP http.Handler
	fence    func(route string) error
	limiter  *identityLimiter
	// deadlines enforces the routes' deadlines on the connections.
	deadlines sweeper

	auditMu     sync.Mutex
	auditOut    io.Writer // nil when console auditing is off
	auditStream *Multicast
	errorStream *Multicast
}

// New returns a Server for cfg. It fails if cfg.Backend is nil, if a route
// override names a path that is not a route, or if the KES metrics cannot be
// registered in cfg.Registry (e.g. because they already are).
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	table := routeTable()
	if cfg.Cluster != nil {
		table = append(table, clusterRoutes()...)
	}
	if cfg.Enclaves != nil {
		table = append(table, enclaveRoutes()...)
	}
	rt, err := newRouter(table, cfg.Routes)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{
		backend:     cfg.Backend,
		cluster:     cfg.Cluster,
		enclaves:    cfg.Enclaves,
		log:         logger.Named("api"),
		version:     orUnknown(cfg.Version),
		commit:      orUnknown(cfg.Commit),
		router:      rt,
		start:       time.Now(),
		registry:    cfg.Registry,
		fence:       cfg.Fence,
		limiter:     newIdentityLimiter(cfg.MaxRequestsPerIdentity),
		auditOut:    cfg.AuditOut,
		auditStream: NewMulticast(streamBuffer),
		errorStream: NewMulticast(streamBuffer),
	}
	if s.auditOut == nil {
		s.auditOut = os.Stdout
	} else if s.auditOut == io.Discard {
		s.auditOut = nil
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.metrics, err = newMetrics(s.registry, s.start); err != nil {
		return nil, err
	}
	s.promHTTP = promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: promLogger{s.log}})
	return s, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// Registry returns the Prometheus registry served at /v1/metrics, so that
// other components (cluster, cache) can register their metrics in it.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// APIs returns the route table, sorted by path, with overrides applied.
func (s *Server) APIs() []RouteInfo {
	infos := make([]RouteInfo, 0, len(s.router.all))
	for _, r := range s.router.all {
		infos = append(infos, r.info())
	}
	slices.SortFunc(infos, func(a, b RouteInfo) int { return strings.Compare(a.Path, b.Path) })
	return infos
}

// Close ends every open log stream (/v1/log/error, /v1/log/audit) and makes
// new streams end immediately; other requests are still served. Call it
// before http.Server.Shutdown, which waits for open streams otherwise
// (NewHTTPServer registers it with RegisterOnShutdown). Close is idempotent
// and always returns nil.
func (s *Server) Close() error {
	s.auditStream.Close()
	s.errorStream.Close()
	return nil
}

// NewHTTPServer returns an *http.Server for h with KES's server settings
// and deliberate resource limits (see limits.go and docs/operations.md):
// ReadHeaderTimeout 5 s (handshake and headers), IdleTimeout 90 s, headers
// at most MaxHeaderBytes, no ReadTimeout or WriteTimeout (routes set their
// own read and write deadlines), HTTP/2 with MaxConcurrentStreams streams
// per connection, MaxReadFrameSize frames, bounded flow-control windows and
// WriteByteTimeout, and a clone of tlsConfig that offers HTTP/2 and
// HTTP/1.1 via ALPN (NextProtos "h2", "http/1.1" unless set) with at least
// TLS 1.2. Serve it with srv.ServeTLS(listener, "", "") or
// srv.ListenAndServeTLS("", ""), preferably on a GuardListener; tlsConfig
// must carry the server certificate (Certificates or
// GetCertificate/GetConfigForClient) and a client-auth mode. If h is a
// *Server, its Close is registered with RegisterOnShutdown so that Shutdown
// ends the log streams. HTTP/2 is served through configureHTTP2 (h2.go), so
// that a connection's client resets feed its GuardListener throttle. It
// fails only if tlsConfig lists CipherSuites without one that HTTP/2
// requires.
func NewHTTPServer(h http.Handler, tlsConfig *tls.Config) (*http.Server, error) {
	var cfg *tls.Config
	if tlsConfig != nil {
		cfg = tlsConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         cfg,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          MaxConcurrentStreams,
			MaxReadFrameSize:              MaxReadFrameSize,
			MaxDecoderHeaderTableSize:     HeaderTableSize,
			MaxEncoderHeaderTableSize:     HeaderTableSize,
			MaxReceiveBufferPerConnection: MaxReceiveBufferPerConnection,
			MaxReceiveBufferPerStream:     MaxReceiveBufferPerStream,
			WriteByteTimeout:              WriteByteTimeout,
		},
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if err := configureHTTP2(srv); err != nil {
		return nil, err
	}
	if s, ok := h.(*Server); ok {
		srv.RegisterOnShutdown(func() { _ = s.Close() })
	}
	return srv, nil
}

// request is a matched request with everything the handlers need.
type request struct {
	*http.Request
	route    *route
	resource string // decoded path remainder after a prefix route's path
	bare     bool   // path was the prefix route's path without trailing '/'
	enclave  string // selected enclave; "" for routes that need none
	identity string // caller identity; "" if unknown
	// identErr is why identity is empty on an identify-only route.
	identErr error
	// identified reports that identity resolution was attempted.
	identified bool
	// version is the key version a key operation used, when ≥ 2 (for the
	// audit log; 0: version 1 or none).
	version int
	// ctx carries the route's deadline (nil for routes without one:
	// Context then returns the request's own).
	ctx *deadlineCtx
}

// Context returns the request's context, with the route's deadline if it
// has one. Handlers use it, not req.Request.Context().
func (r *request) Context() context.Context {
	if r.ctx != nil {
		return r.ctx
	}
	return r.Request.Context()
}

// ServeHTTP serves one API request: route match, method check, body limit,
// deadline, enclave selection, authentication and authorisation, the
// handler, then metrics and the audit event.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, resource, bare := s.router.match(r.URL.Path)
	req := &request{Request: r, route: rt, resource: resource, bare: bare}
	sw := &statusWriter{ResponseWriter: w}

	timed := rt != nil && !rt.stream
	if timed {
		s.metrics.active.Inc()
	}
	s.serve(sw, w, req)
	if timed {
		s.metrics.active.Dec()
		s.metrics.latency.Observe(time.Since(start).Seconds())
	}
	if rt != nil && rt.counted {
		s.metrics.count(sw.status())
	}
	if rt == nil || rt.audited {
		s.audit(req, sw.status(), start)
	}
}

// serve runs the request pipeline up to and including the handler. w is
// the wrapped writer; raw is the server's writer, which MaxBytesReader needs
// to close the connection when a body is too large.
func (s *Server) serve(w http.ResponseWriter, raw http.ResponseWriter, req *request) {
	rt := req.route
	if rt == nil {
		http.NotFound(w, req.Request)
		return
	}
	if !rt.allows(req.Method) {
		w.Header().Set("Accept", rt.method)
		writeError(w, kes.NewError(http.StatusMethodNotAllowed, "received method '%s' expected '%s'", req.Method, rt.method))
		return
	}
	if s.fence != nil && !unfenced(rt.path) {
		if err := s.fence(rt.path); err != nil {
			s.fail(w, req, err)
			return
		}
	}
	if req.Body != nil {
		req.Body = http.MaxBytesReader(raw, req.Body, rt.bodyLimit(req.ContentLength))
	}
	if rt.timeout > 0 {
		// See deadline.go: no timer per request.
		dc := &deadlineCtx{parent: req.Request.Context(), deadline: time.Now().Add(rt.timeout)}
		req.ctx = dc
		s.deadlines.add(req, w)
		defer func() {
			s.deadlines.remove(req)
			dc.end()
		}()
	}
	if rt.auth != authNone {
		enc, err := selectEnclave(req.Request)
		if err != nil {
			writeError(w, err)
			return
		}
		req.enclave = enc
		if rt.global {
			req.enclave = enclave.DefaultEnclave
		}
	}
	if err := s.authenticate(req); err != nil {
		s.fail(w, req, err)
		return
	}
	if req.identity != "" {
		if !s.limiter.acquire(req.identity) {
			writeError(w, errTooManyRequests)
			return
		}
		defer s.limiter.release(req.identity)
	}
	if err := rt.handle(s, w, req); err != nil {
		s.fail(w, req, err)
	}
}

// unfenced reports whether a route is served even while the node is
// fenced (Config.Fence): the ones an operator needs to see why.
func unfenced(path string) bool {
	return path == "/version" || path == "/v1/metrics" || path == "/v1/cluster/status"
}

// fail answers a request with err: a kes.Error (possibly wrapped) is sent
// as is; anything else is logged in full and answered with 500 and the
// route's generic message.
func (s *Server) fail(w http.ResponseWriter, req *request, err error) {
	var e kes.Error
	if errors.As(err, &e) && e.Code >= 400 && e.Code <= 599 {
		writeError(w, e)
		return
	}
	msg := "internal server error"
	if req.route != nil && req.route.failMsg != "" {
		msg = req.route.failMsg
	}
	args := []any{"method", req.Method, "path", req.URL.Path, "enclave", req.enclave, "identity", req.identity, "error", err}
	if ctxErr := req.Context().Err(); ctxErr != nil {
		// The client went away or the route deadline passed: not a
		// server fault worth an error-level entry.
		s.log.Warn(msg, append(args, "context", ctxErr)...)
	} else {
		s.log.Error(msg, args...)
	}
	writeError(w, kes.Error{Code: http.StatusInternalServerError, Message: msg})
}

// statusWriter records the status code a handler sent. It forwards Flush
// and exposes the underlying writer to http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client, if the underlying writer can.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the underlying writer (for http.ResponseController).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the status sent, 200 if the handler wrote nothing.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// promLogger adapts hclog to promhttp's error logger.
type promLogger struct{ log hclog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("metrics", "error", v) }
