package cluster

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// registry knows every open cluster connection, accepted or dialed, with
// the identity its peer proved in the handshake, so that a membership
// change can close the connections of a peer that is no longer authorized
// (see Node.Revoke): admission is checked once per connection, and a
// connection must not outlive its peer's membership.
//
// All methods are safe for concurrent use.
type registry struct {
	mu    sync.Mutex
	conns map[net.Conn]string
}

func newRegistry() *registry { return &registry{conns: map[net.Conn]string{}} }

// add records c as a connection of identity id. The caller must call
// remove once c is closed.
func (r *registry) add(c net.Conn, id string) {
	r.mu.Lock()
	r.conns[c] = id
	r.mu.Unlock()
}

// remove forgets c.
func (r *registry) remove(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// track records c and returns it wrapped so that closing it also removes
// it from the registry. A nil registry returns c unchanged (untracked).
func (r *registry) track(c *tls.Conn, id string) net.Conn {
	if r == nil {
		return c
	}
	t := &trackedConn{Conn: c, reg: r}
	r.add(t, id)
	return t
}

// revoke closes every connection whose identity authorize rejects and
// returns how many it closed.
func (r *registry) revoke(authorize func(string) bool) int {
	r.mu.Lock()
	var victims []net.Conn
	for c, id := range r.conns {
		if !authorize(id) {
			victims = append(victims, c)
			delete(r.conns, c)
		}
	}
	r.mu.Unlock()
	for _, c := range victims {
		_ = c.Close()
	}
	return len(victims)
}

// trackedConn leaves its registry when closed. It embeds *tls.Conn so that
// users that look for ConnectionState (net/http's client) still find it.
type trackedConn struct {
	*tls.Conn
	reg  *registry
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.reg.remove(c) })
	return c.Conn.Close()
}

// Revoke closes every open cluster connection, Raft or RPC, accepted or
// dialed, whose peer identity Config.Authorize no longer admits, and
// returns how many it closed. Call it whenever the membership changes: a
// removed member's connections must not outlive its removal. Safe for
// concurrent use.
func (n *Node) Revoke() int {
	closed := n.conns.revoke(n.cfg.Authorize)
	if closed > 0 {
		n.log.Warn("closed cluster connections of peers that are no longer members", "connections", closed)
	}
	return closed
}

// authorizeRPC checks every RPC request against the current membership,
// not only the connection's first: the peer's identity is taken from the
// one certificate it proved in the handshake.
func (n *Node) authorizeRPC(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "not a cluster member", http.StatusForbidden)
			return
		}
		id, err := peerIdentity(r.TLS)
		if err != nil || !n.cfg.Authorize(id) {
			http.Error(w, "not a cluster member", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
