package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/keyraft/keyraft/internal/identity"
)

// Connection kinds: the first byte a dialer writes after the handshake.
const (
	kindRaft byte = 'R'
	kindRPC  byte = 'H'
)

// ErrNotMember is returned when a peer's certificate identity is not
// authorized on the cluster port.
var ErrNotMember = errors.New("cluster: peer is not a cluster member")

const handshakeTimeout = 10 * time.Second

// mux accepts TLS connections on the cluster port, authenticates the peer
// and routes the connection by its first byte.
type mux struct {
	ln        net.Listener
	tlsConfig *tls.Config
	authorize func(id string) bool
	log       hclog.Logger
	conns     *registry

	raft *subListener
	rpc  *subListener

	closeOnce sync.Once
}

func newMux(ln net.Listener, cfg *tls.Config, authorize func(string) bool, conns *registry, log hclog.Logger) *mux {
	m := &mux{
		ln:        ln,
		tlsConfig: cfg,
		authorize: authorize,
		log:       log,
		conns:     conns,
		raft:      newSubListener(ln.Addr()),
		rpc:       newSubListener(ln.Addr()),
	}
	go m.serve()
	return m
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.raft.close()
			m.rpc.close()
			return
		}
		go m.route(c)
	}
}

func (m *mux) route(c net.Conn) {
	conn := tls.Server(c, m.tlsConfig)
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := conn.Handshake(); err != nil {
		m.log.Debug("cluster handshake failed", "remote", c.RemoteAddr(), "error", err)
		conn.Close()
		return
	}
	cs := conn.ConnectionState()
	id, err := peerIdentity(&cs)
	if err != nil || !m.authorize(id) {
		m.log.Warn("rejected cluster connection", "remote", c.RemoteAddr(), "identity", id, "error", err)
		conn.Close()
		return
	}
	kind := make([]byte, 1)
	if _, err := conn.Read(kind); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	switch kind[0] {
	case kindRaft:
		// Raft never looks at the TLS state, so the connection is wrapped
		// to leave the registry when Raft closes it.
		m.raft.push(m.conns.track(conn, id))
	case kindRPC:
		// The RPC server needs the *tls.Conn itself (for r.TLS); it
		// leaves the registry through the server's ConnState hook.
		m.conns.add(conn, id)
		m.rpc.push(conn)
	default:
		conn.Close()
	}
}

// errChain is why a cluster peer presenting more than one certificate is
// refused.
var errChain = errors.New("cluster: peer sent a certificate chain; members present exactly one certificate")

// peerIdentity names a cluster peer after the one certificate it
// presented. The TLS handshake proves possession of the key of the first
// certificate only; members use self-contained certificates, so a chain is
// refused rather than searched for a certificate the peer may merely have
// copied (see docs/compatibility.md).
func peerIdentity(cs *tls.ConnectionState) (string, error) {
	switch len(cs.PeerCertificates) {
	case 0:
		return "", identity.ErrNoClientCert
	case 1:
		return identity.Of(cs.PeerCertificates[0]), nil
	default:
		return "", errChain
	}
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() { err = m.ln.Close() })
	return err
}

// connectTimeout bounds connecting to a peer and the TLS handshake: a peer
// whose host vanished (packets dropped, no reset) must not hold a caller
// for longer than that.
const connectTimeout = 3 * time.Second

// dial opens an authenticated connection of the given kind to addr.
func dial(ctx context.Context, dialTCP dialFunc, addr string, kind byte, cfg *tls.Config, authorize func(string) bool, conns *registry) (net.Conn, error) {
	if dialTCP == nil {
		dialTCP = (&net.Dialer{}).DialContext
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	raw, err := dialTCP(cctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(cctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	cs := conn.ConnectionState()
	// The server has no client-facing certificate rules of its own here:
	// a member's certificate identity is what counts, as on the accept side.
	id, err := peerIdentity(&cs)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	if !authorize(id) {
		conn.Close()
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, ErrNotMember)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(deadline)
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conns.track(conn, id), nil
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// subListener is a net.Listener fed by the mux.
type subListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newSubListener(addr net.Addr) *subListener {
	return &subListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *subListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *subListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *subListener) Close() error { l.close(); return nil }

func (l *subListener) Addr() net.Addr { return l.addr }

// advertiseAddr is the cluster address as configured (host:port). It is
// not resolved: Raft records it and every dial resolves the name again, so
// a member whose IP changes (a recreated container) stays reachable.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// streamLayer is the raft.StreamLayer over the mux.
type streamLayer struct {
	*subListener
	advertise net.Addr
	tlsConfig *tls.Config
	authorize func(string) bool
	dial      dialFunc
	conns     *registry
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dial(ctx, s.dial, string(address), kindRaft, s.tlsConfig, s.authorize, s.conns)
}
