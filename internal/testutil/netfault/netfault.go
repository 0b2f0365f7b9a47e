// Package netfault cuts a test node off the network: a Switch wraps a
// node's listener and dialer, and Cut closes every connection through them
// and refuses new ones until Heal. It simulates a network partition for
// in-process cluster tests.
package netfault

import (
	"context"
	"errors"
	"net"
	"sync"
)

// ErrCut is returned by Dial and Accept-side closes while the switch is cut.
var ErrCut = errors.New("netfault: network cut")

// Switch controls one node's connectivity. It is safe for concurrent use.
type Switch struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// New returns a connected switch.
func New() *Switch { return &Switch{conns: map[net.Conn]struct{}{}} }

// Cut closes all tracked connections and refuses new ones.
func (s *Switch) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = true
	for c := range s.conns {
		c.Close()
	}
	s.conns = map[net.Conn]struct{}{}
}

// Heal lets connections through again.
func (s *Switch) Heal() {
	s.mu.Lock()
	s.cut = false
	s.mu.Unlock()
}

func (s *Switch) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return nil, false
	}
	s.conns[c] = struct{}{}
	return &conn{Conn: c, s: s}, true
}

func (s *Switch) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Dial dials addr unless the switch is cut.
func (s *Switch) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut {
		return nil, ErrCut
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

// Listener wraps ln so that accepted connections are closed while cut.
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
	s    *Switch
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.s.untrack(c.Conn) })
	return c.Conn.Close()
}
