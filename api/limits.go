package api

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyraft/keyraft/internal/kes"
)

// Server-wide HTTP limits that NewHTTPServer sets. They are deliberate
// choices for a KMS whose requests are small JSON documents (see
// docs/operations.md, "Hostile clients").
const (
	// ReadHeaderTimeout bounds the TLS handshake plus the request headers
	// (KES's value).
	ReadHeaderTimeout = 5 * time.Second
	// IdleTimeout closes keep-alive connections without requests (KES's value).
	IdleTimeout = 90 * time.Second
	// MaxHeaderBytes bounds the request line plus headers of an HTTP/1.1
	// request and the header list of an HTTP/2 request
	// (SETTINGS_MAX_HEADER_LIST_SIZE). KES clients send a few hundred bytes.
	MaxHeaderBytes = 32 << 10
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: the number
	// of HTTP/2 requests one connection may have in progress, and so the
	// number of handlers one connection can keep busy. 100 is the RFC 9113
	// recommended minimum; Go clients (MinIO) open more connections when
	// they need more.
	MaxConcurrentStreams = 100
	// MaxReadFrameSize is SETTINGS_MAX_FRAME_SIZE, the largest HTTP/2 frame
	// payload the server accepts: the protocol minimum, 16 KiB.
	MaxReadFrameSize = 16 << 10
	// MaxReceiveBufferPerStream and MaxReceiveBufferPerConnection are the
	// HTTP/2 flow-control windows: how many body bytes a client may send
	// before the handler has read them.
	MaxReceiveBufferPerStream     = 256 << 10
	MaxReceiveBufferPerConnection = 1 << 20
	// WriteByteTimeout closes an HTTP/2 connection that accepts no data for
	// this long while the server has some to send (clients that flood
	// frames and never read the answers).
	WriteByteTimeout = 10 * time.Second
	// HeaderTableSize bounds both HPACK dynamic tables (the HTTP/2 default).
	HeaderTableSize = 4096
)

// errTooManyRequests is the answer to a request beyond the caller's
// concurrent-request limit (Config.MaxRequestsPerIdentity). It is a 4xx on
// purpose: MinIO benches an endpoint for 30 s after any 5xx but 501, which
// would move all of its traffic away from this node because of a limit that
// concerns one identity; a 429 fails just this request (see
// docs/operations.md).
var errTooManyRequests = kes.Error{Code: http.StatusTooManyRequests, Message: "too many requests"}

// identityLimiter counts the requests in progress per identity. It is safe
// for concurrent use; the zero max means no limit.
type identityLimiter struct {
	max      int
	mu       sync.Mutex
	inFlight map[string]int
}

func newIdentityLimiter(max int) *identityLimiter {
	if max <= 0 {
		return nil
	}
	return &identityLimiter{max: max, inFlight: map[string]int{}}
}

// acquire takes a slot for id; it reports false, taking nothing, if id
// already has max requests in progress. A nil limiter always succeeds.
func (l *identityLimiter) acquire(id string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[id] >= l.max {
		return false
	}
	l.inFlight[id]++
	return true
}

// release returns a slot taken by acquire.
func (l *identityLimiter) release(id string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.inFlight[id]; n <= 1 {
		delete(l.inFlight, id)
	} else {
		l.inFlight[id] = n - 1
	}
}

// Reset throttling: a connection whose client resets streams (HTTP/2
// RST_STREAM frames, counted by frameWatch; the "rapid reset" attack)
// faster than resetRate per second, after a burst of resetBurst, has its
// reads delayed so that it cannot go faster; TCP flow control then stalls
// the client instead of the server burning CPU on frames, streams and
// handlers that nobody waits for. A read waits at most maxResetDelay at a
// time.
//
// Control-frame throttling works the same way for HTTP/2 PING and SETTINGS
// frames (not their acknowledgements), the two frames the server must
// answer: a client that sends them faster than controlRate per second,
// after a burst of controlBurst, and does not read the answers (the
// "PING/SETTINGS flood") would otherwise make the server queue up to
// 10,000 answers per connection before x/net closes it. Go clients (MinIO)
// send a PING only to check an idle connection.
const (
	resetRate     = 100
	resetBurst    = 200
	maxResetDelay = time.Second

	controlRate  = 100
	controlBurst = 200
)

// GuardOptions are the connection limits of GuardListener. The zero value
// sets none.
type GuardOptions struct {
	// MaxConnections, if positive, caps the connections open at a time. A
	// connection accepted beyond it is closed at once (before the TLS
	// handshake): the client sees a transport error and, if it knows other
	// nodes, fails over to them. Blocking in Accept instead would leave
	// clients waiting in the kernel's backlog for as long as an attacker
	// holds the slots. Rejected, if not nil, is called for every connection
	// closed that way.
	MaxConnections int
	Rejected       func()
	// AcceptRate, if positive, paces Accept to that many connections per
	// second after a burst of AcceptRate/10 (at least 1); the others wait
	// in the kernel's backlog. Every new connection is a TLS handshake of
	// ~50 KiB of memory in flight (key exchange, certificates, a grown
	// goroutine stack): a client that opens a thousand at once would
	// otherwise have them all in flight together. Pacing bounds that to
	// about the burst, and a wait in the backlog costs nothing, so a slow
	// client cannot hold a slot the way it could hold a handshake slot.
	// Paced, if not nil, is called for every connection that waited.
	AcceptRate int
	Paced      func()
}

// GuardListener wraps the API listener: every accepted connection gets the
// reset and control-frame throttles above, and opt's caps apply. The
// returned listener is safe for concurrent use; Accept returns ln's
// errors; closing it closes ln. Serve an http.Server from NewHTTPServer on
// it, so that requests can find their connection.
func GuardListener(ln net.Listener, opt GuardOptions) net.Listener {
	l := &guardListener{Listener: ln, rejected: opt.Rejected, paced: opt.Paced, done: make(chan struct{})}
	if opt.MaxConnections > 0 {
		l.sem = make(chan struct{}, opt.MaxConnections)
	}
	if opt.AcceptRate > 0 {
		l.pace = rate.NewLimiter(rate.Limit(opt.AcceptRate), max(1, opt.AcceptRate/10))
	}
	return l
}

type guardListener struct {
	net.Listener
	sem      chan struct{} // nil: no cap
	rejected func()
	pace     *rate.Limiter // nil: no pacing
	paced    func()
	done     chan struct{} // closed by Close: ends a pacing wait
	once     sync.Once
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.wait(); err != nil {
			c.Close()
			return nil, err
		}
		g := &guardConn{Conn: c, closed: make(chan struct{}),
			resets: rate.NewLimiter(resetRate, resetBurst), controls: rate.NewLimiter(controlRate, controlBurst)}
		if l.sem == nil {
			return g, nil
		}
		select {
		case l.sem <- struct{}{}:
			g.release = func() { <-l.sem }
			return g, nil
		default:
			c.Close()
			if l.rejected != nil {
				l.rejected()
			}
		}
	}
}

// wait takes a token from the pacing limiter, waiting for one if needed
// (Accept calls it for each connection it accepted). Close ends the wait
// with net.ErrClosed.
func (l *guardListener) wait() error {
	if l.pace == nil {
		return nil
	}
	r := l.pace.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if l.paced != nil {
		l.paced()
	}
	if !sleep(d, l.done) {
		r.Cancel()
		return net.ErrClosed
	}
	return nil
}

// Close closes the listener and ends a pacing wait in Accept.
func (l *guardListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// guardConn is an accepted connection with its slot and reset throttle.
type guardConn struct {
	net.Conn
	release func() // nil: no slot held
	once    sync.Once
	closed  chan struct{}

	resets    *rate.Limiter // RST_STREAM frames
	controls  *rate.Limiter // PING and SETTINGS frames
	notBefore atomic.Int64  // unix nanos before which wait blocks
}

// wait blocks while the connection is throttled (at most maxResetDelay,
// less if the connection is closed meanwhile). frameWatch calls it before
// each read of the HTTP/2 server, above TLS, so that the throttle applies
// frame by frame: below TLS a single read returns a whole record, which
// holds a thousand small frames.
func (c *guardConn) wait() {
	// notBefore stays 0 on a connection that never exceeded a rate:
	// no clock read on the common path.
	nb := c.notBefore.Load()
	if nb == 0 {
		return
	}
	if d := time.Until(time.Unix(0, nb)); d > 0 {
		sleep(min(d, maxResetDelay), c.closed)
	}
}

// sleep waits for d or until done is closed, and reports whether the whole
// of d passed.
func sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// clientReset records a request its client abandoned (an RST_STREAM);
// beyond the reset rate it pushes the connection's next HTTP/2 reads back.
func (c *guardConn) clientReset() { c.throttle(c.resets) }

// clientControl records a PING or SETTINGS frame that the server must
// answer; beyond the control rate it pushes the connection's next reads
// back.
func (c *guardConn) clientControl() { c.throttle(c.controls) }

// throttle takes a token from l and, if l is exhausted, moves notBefore to
// when the token is due. Safe for concurrent use.
func (c *guardConn) throttle(l *rate.Limiter) {
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		until := time.Now().Add(d).UnixNano()
		for {
			old := c.notBefore.Load()
			if old >= until || c.notBefore.CompareAndSwap(old, until) {
				return
			}
		}
	}
}

func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		close(c.closed)
		if c.release != nil {
			c.release()
		}
	})
	return err
}
