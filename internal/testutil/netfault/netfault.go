// Package netfault cuts a test node off the network. A Switch wraps a
// node's listener and dialer. Cut closes every connection through them and
// refuses new ones, as when a peer's process dies (the peer sees resets).
// Blackhole keeps connections open but delivers nothing in either
// direction and lets new dials hang, as when a host vanishes or a network
// drops packets (the peer sees nothing at all). Heal restores traffic;
// data held back by a blackhole is then delivered, as TCP would retransmit.
package netfault

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// ErrCut is returned by Dial while the switch is cut.
var ErrCut = errors.New("netfault: network cut")

// Switch controls one node's connectivity. It is safe for concurrent use.
type Switch struct {
	mu    sync.Mutex
	cut   bool
	hole  chan struct{} // non-nil while blackholed; closed by Heal
	conns map[*conn]struct{}
}

// New returns a connected switch.
func New() *Switch { return &Switch{conns: map[*conn]struct{}{}} }

// Cut closes all tracked connections and refuses new ones.
func (s *Switch) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = true
	for c := range s.conns {
		c.Conn.Close()
	}
	s.conns = map[*conn]struct{}{}
}

// Blackhole holds back all traffic on tracked connections and makes new
// dials hang until their context ends.
func (s *Switch) Blackhole() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hole == nil {
		s.hole = make(chan struct{})
	}
}

// Heal lets traffic through again.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = false
	if s.hole != nil {
		close(s.hole)
		s.hole = nil
	}
}

// gate returns the channel to wait on while blackholed, or nil.
func (s *Switch) gate() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hole
}

func (s *Switch) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return nil, false
	}
	tc := &conn{Conn: c, s: s, closed: make(chan struct{})}
	s.conns[tc] = struct{}{}
	return tc, true
}

func (s *Switch) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Dial dials addr unless the switch is cut (ErrCut) or blackholed (it then
// waits for ctx, like a SYN that is never answered).
func (s *Switch) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	cut, hole := s.cut, s.hole
	s.mu.Unlock()
	if cut {
		return nil, ErrCut
	}
	if hole != nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := s.track(c)
	if !ok {
		return nil, ErrCut
	}
	return tc, nil
}

// Listener wraps ln so that accepted connections follow the switch.
func (s *Switch) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, s: s} }

type listener struct {
	net.Listener
	s *Switch
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.s.track(c); ok {
			return tc, nil
		}
	}
}

type conn struct {
	net.Conn
	s      *Switch
	once   sync.Once
	closed chan struct{}

	mu              sync.Mutex
	readDL, writeDL time.Time
	pending         []byte // read while blackholed, delivered after Heal
}

// hold blocks while the switch is blackholed, until it heals, the
// connection is closed or the deadline passes.
func (c *conn) hold(deadline func() time.Time) error {
	for {
		gate := c.s.gate()
		if gate == nil {
			return nil
		}
		var timeout <-chan time.Time
		if dl := deadline(); !dl.IsZero() {
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-gate:
		case <-c.closed:
			return net.ErrClosed
		case <-timeout:
			return os.ErrDeadlineExceeded
		}
	}
}

func (c *conn) deadline(read bool) func() time.Time {
	return func() time.Time {
		c.mu.Lock()
		defer c.mu.Unlock()
		if read {
			return c.readDL
		}
		return c.writeDL
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if err := c.hold(c.deadline(true)); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if herr := c.hold(c.deadline(true)); herr != nil && n > 0 {
		// Data that arrived into the hole is held back until it heals.
		c.mu.Lock()
		c.pending = append(c.pending, p[:n]...)
		c.mu.Unlock()
		return 0, herr
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if err := c.hold(c.deadline(false)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL, c.writeDL = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDL = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.s.untrack(c)
	})
	return c.Conn.Close()
}
