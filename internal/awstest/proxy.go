package awstest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a reverse proxy on 127.0.0.1 in front of an AWS endpoint that can
// inject faults and counts calls per operation. Point the client's endpoint
// at URL. All methods are safe for concurrent use.
//
// Calls are counted by operation name, the X-Amz-Target header without its
// service prefix ("CreateSecret", "GetSecretValue", ...). Every request that
// reaches the handler is counted, faulted or not; connections refused in down
// mode are not. With Record, the request bodies of chosen operations are
// kept as well.
//
// A Proxy forwards every call, RestoreSecret included, to its target. Put
// it in front of Emulator.URL (not Emulator.KumoURL) so that RestoreSecret,
// which kumo lacks, is emulated behind it (see Emulator).
type Proxy struct {
	// URL is the proxy's endpoint, e.g. "http://127.0.0.1:40124".
	URL string

	rp        *httputil.ReverseProxy
	srv       *http.Server
	ln        *downListener
	transport *http.Transport
	restore   *restorer // answers the calls kumo lacks; nil = forward everything

	mu        sync.Mutex
	latency   time.Duration
	rules     []*rule
	counts    map[string]int
	recording map[string]bool     // operations whose request bodies are kept
	requests  map[string][][]byte // kept request bodies by operation
	injected  int
	release   chan struct{} // closed by ReleaseHangs
}

type faultKind int

const (
	faultAPIError faultKind = iota + 1
	faultDrop
	faultHang
)

// Fault is what the proxy does instead of (or after) forwarding a call.
// Build one with Throttle, APIError, ServerError, Drop or Hang.
type Fault struct {
	kind    faultKind
	status  int
	code    string
	message string
	forward bool
}

// Throttle is the error AWS returns when a request rate quota is exceeded:
// HTTP 400 with {"__type":"ThrottlingException","message":"Rate exceeded"}.
func Throttle() Fault {
	return APIError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
}

// ServerError is an HTTP 500 InternalServiceError, which SDKs retry.
func ServerError() Fault {
	return APIError(http.StatusInternalServerError, "InternalServiceError", "injected internal error")
}

// APIError answers with an awsJson1.1 error: the given HTTP status and a JSON
// body {"__type": code, "message": message}, which is what aws-sdk-go-v2
// parses for Secrets Manager (the X-Amzn-Query-Error header only matters for
// query-compatible services).
func APIError(status int, code, message string) Fault {
	return Fault{kind: faultAPIError, status: status, code: code, message: message}
}

// Drop hijacks the connection and closes it without an answer.
func Drop() Fault { return Fault{kind: faultDrop} }

// Hang holds the call until ReleaseHangs (or Clear) is called or the client
// gives up; then it closes the connection without an answer.
func Hang() Fault { return Fault{kind: faultHang} }

// AfterForward returns f changed so that the call is first forwarded to the
// backend (it takes effect there) and the fault replaces the real answer.
func (f Fault) AfterForward() Fault {
	f.forward = true
	return f
}

// String describes the fault for test logs.
func (f Fault) String() string {
	var s string
	switch f.kind {
	case faultAPIError:
		s = fmt.Sprintf("%d %s", f.status, f.code)
	case faultDrop:
		s = "drop"
	case faultHang:
		s = "hang"
	default:
		s = "none"
	}
	if f.forward {
		s += " after forward"
	}
	return s
}

// rule injects fault into calls of op ("" = any operation).
type rule struct {
	op        string
	remaining int // faults left to inject; < 0 = unlimited
	every     int // inject on every every-th matching call (1 = each)
	seen      int // matching calls so far
	fault     Fault
}

// NewProxy starts a proxy in front of target (e.g. Emulator.URL) on a free
// 127.0.0.1 port and closes it in t.Cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := newProxy(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// newProxy starts a proxy in front of target on a free 127.0.0.1 port. A
// non-nil restore answers the calls it emulates instead of target.
func newProxy(target string, restore *restorer) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("awstest: proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("awstest: proxy listen: %w", err)
	}
	p := &Proxy{
		URL:       "http://" + ln.Addr().String(),
		ln:        &downListener{Listener: ln},
		restore:   restore,
		counts:    make(map[string]int),
		recording: make(map[string]bool),
		requests:  make(map[string][][]byte),
		release:   make(chan struct{}),
		transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // keep the signed Host header intact
		},
		Transport: p.transport,
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// close releases hung calls, stops serving and closes idle connections.
func (p *Proxy) close() {
	p.ReleaseHangs()
	_ = p.srv.Close()
	p.transport.CloseIdleConnections()
}

// SetLatency delays every forwarded call by d (0 turns it off).
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// Inject makes the next n calls of op ("" = any operation) fail with f;
// n < 0 means every call until Clear.
func (p *Proxy) Inject(op string, n int, f Fault) {
	p.addRule(&rule{op: op, remaining: n, every: 1, fault: f})
}

// InjectEvery makes every k-th call of op ("" = any) fail with f, until Clear.
func (p *Proxy) InjectEvery(op string, k int, f Fault) {
	if k < 1 {
		k = 1
	}
	p.addRule(&rule{op: op, remaining: -1, every: k, fault: f})
}

func (p *Proxy) addRule(r *rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

// Clear removes every fault rule and latency, releases hung calls and leaves
// down mode. Call counts are kept.
func (p *Proxy) Clear() {
	p.mu.Lock()
	p.rules = nil
	p.latency = 0
	p.mu.Unlock()
	p.ReleaseHangs()
	p.SetDown(false)
}

// ReleaseHangs ends every call currently held by a Hang fault (their
// connections are closed). Later Hang faults hold calls again.
func (p *Proxy) ReleaseHangs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
}

// SetDown switches down mode: while down, every new connection is closed as
// soon as it is accepted and every request on an open connection is dropped.
func (p *Proxy) SetDown(down bool) { p.ln.setDown(down) }

// Calls returns how many calls of op reached the proxy ("" = all operations).
func (p *Proxy) Calls(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if op != "" {
		return p.counts[op]
	}
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

// Record makes the proxy keep the request body of every later call of op
// (an operation name, as counted by Calls), for Requests. Bodies are kept
// until ResetCalls.
func (p *Proxy) Record(op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recording[op] = true
}

// Requests returns copies of the kept request bodies of op, oldest first:
// those of the calls made since Record(op) (and the last ResetCalls) that
// reached the handler, faulted or not.
func (p *Proxy) Requests(op string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.requests[op]))
	for i, b := range p.requests[op] {
		out[i] = bytes.Clone(b)
	}
	return out
}

// Injected returns how many faults the proxy has injected.
func (p *Proxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// ResetCalls zeroes the call and injection counters and drops the kept
// request bodies (Record stays in effect).
func (p *Proxy) ResetCalls() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.counts)
	clear(p.requests)
	p.injected = 0
}

// Operation returns the operation name of an AWS JSON request: its
// X-Amz-Target header without the service prefix.
func Operation(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(target, '.'); i >= 0 {
		return target[i+1:]
	}
	return target
}

// pick counts (and, if recording op, keeps) the call and returns the fault
// to inject, if any.
func (p *Proxy) pick(op string, body []byte) (Fault, time.Duration, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[op]++
	if p.recording[op] {
		p.requests[op] = append(p.requests[op], bytes.Clone(body))
	}
	for _, r := range p.rules {
		if r.remaining == 0 || (r.op != "" && r.op != op) {
			continue
		}
		r.seen++
		if r.seen%r.every != 0 {
			continue
		}
		if r.remaining > 0 {
			r.remaining--
		}
		p.injected++
		return r.fault, p.latency, p.release, true
	}
	return Fault{}, p.latency, p.release, false
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if p.ln.isDown() {
		hijackClose(w)
		return
	}
	// Forward a buffered copy of the (small, JSON) request body. Forwarding
	// the inbound body itself lets the transport's final read of it race
	// with the server closing it once the answer's headers are written
	// (golang/go#40747); the transport then tears down the backend
	// connection and the client gets a truncated 200 answer.
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return // the client went away
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	fault, latency, release, ok := p.pick(Operation(r), body)
	if latency > 0 {
		timer := time.NewTimer(latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
	if !ok {
		p.forward(w, r, body)
		return
	}
	if fault.forward {
		// The backend applies the call; its answer is discarded.
		p.forward(httptest.NewRecorder(), r, body)
	}
	switch fault.kind {
	case faultAPIError:
		writeAWSJSON(w, fault.status, "awstest-injected", map[string]string{"__type": fault.code, "message": fault.message})
	case faultDrop:
		hijackClose(w)
	case faultHang:
		select {
		case <-release:
		case <-r.Context().Done():
		}
		hijackClose(w)
	}
}

// forward answers r with the restore emulation if it handles the call, else
// by passing it on to the target.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if p.restore != nil && p.restore.serve(w, r, body) {
		return
	}
	p.rp.ServeHTTP(w, r)
}

// hijackClose closes the client connection without writing a response.
func hijackClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// downListener closes accepted connections while down.
type downListener struct {
	net.Listener
	mu   sync.Mutex
	down bool
}

func (l *downListener) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

func (l *downListener) isDown() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.down
}

func (l *downListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.isDown() {
			return c, nil
		}
		_ = c.Close()
	}
}
