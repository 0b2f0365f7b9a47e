package aws

import (
	"context"
	"net"
	"sync"
)

// connTracker remembers the open connections made through its dialer, so
// that Close can end them: the SDK clones the HTTP transport it is given
// (for example to add AWS_CA_BUNDLE), which leaves no transport of ours whose
// idle connections could be closed, but the clones keep our DialContext.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	dials int // connections made, for tests: a peer may close them at any time
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer wraps dial so that every connection it makes is tracked.
func (ct *connTracker) dialer(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, ct: ct}
		ct.mu.Lock()
		if ct.conns == nil {
			ct.conns = make(map[*trackedConn]struct{})
		}
		ct.conns[tc] = struct{}{}
		ct.dials++
		ct.mu.Unlock()
		return tc, nil
	}
}

// closeAll closes every tracked connection that is still open.
func (ct *connTracker) closeAll() {
	ct.mu.Lock()
	conns := ct.conns
	ct.conns = nil
	ct.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// trackedConn removes itself from its tracker when closed.
type trackedConn struct {
	net.Conn
	ct *connTracker
}

func (c *trackedConn) Close() error {
	c.ct.mu.Lock()
	delete(c.ct.conns, c)
	c.ct.mu.Unlock()
	return c.Conn.Close()
}
