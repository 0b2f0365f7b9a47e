//lint:file-ignore SA1019 x/net/http2's server API is deprecated in favour of net/http's, which offers no way to serve HTTP/2 on a wrapped connection; from Go 1.27 x/net implements this API on top of net/http's server, so it keeps working (see the comment below).

package api

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"golang.org/x/net/http2"
)

// HTTP/2 is served by golang.org/x/net/http2, the implementation net/http
// bundles, configured with ConfigureServer so that the server's HTTP2
// settings and graceful shutdown apply unchanged. It is called directly
// instead of through the bundled copy for one reason: x/net's ServeConn
// takes any net.Conn, so each connection can be wrapped in a frameWatch
// that sees the client's frame headers. The bundled copy only accepts the
// *tls.Conn itself. x/net marks this server API deprecated ("set
// http.Server.Protocols instead"); from Go 1.27 it wraps net/http's own
// HTTP/2 server and ServeConn still takes any net.Conn.

// configureHTTP2 installs the HTTP/2 server on srv (after srv.HTTP2 is
// set). It fails only if srv's TLS configuration cannot carry HTTP/2.
func configureHTTP2(srv *http.Server) error {
	h2 := &http2.Server{}
	if err := http2.ConfigureServer(srv, h2); err != nil {
		return fmt.Errorf("api: configuring HTTP/2: %w", err)
	}
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		// net/http passes the connection's base context (ConnContext)
		// through an unexported-by-convention method of h, as
		// ConfigureServer's own handler reads it.
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		h2.ServeConn(newFrameWatch(c), &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
	return nil
}

// HTTP/2 framing (RFC 9113, sections 3.4 and 4.1).
const (
	clientPrefaceLen = 24 // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	frameHeaderLen   = 9
	frameRSTStream   = 0x3
	frameSettings    = 0x4
	framePing        = 0x6
	flagAck          = 0x1 // on SETTINGS and PING
)

// frameWatch is the TLS connection of an HTTP/2 client as the HTTP/2
// server reads it. It follows the frame boundaries in the bytes read
// (reading only the 9-byte frame headers; payloads are skipped by length)
// and reports every RST_STREAM, PING and SETTINGS the client sends to the
// connection's guard (GuardListener), which throttles the connection's
// reads beyond the reset and control-frame rates. Counting frames, not
// abandoned handlers, matters: a rapid-reset client resets most streams
// before their handlers start, so the server sees nothing but the cost of
// parsing them.
//
// The embedded *tls.Conn provides everything else, ConnectionState
// included, so the server still sees the client certificate. Read is
// called by the HTTP/2 server's one reader goroutine only.
type frameWatch struct {
	*tls.Conn
	guard *guardConn // nil: no guard, nothing to report to

	preface int                  // preface bytes still to skip
	skip    uint32               // payload bytes of the current frame still to skip
	hdr     [frameHeaderLen]byte // partial frame header
	hdrN    int
}

func newFrameWatch(c *tls.Conn) *frameWatch {
	g, _ := c.NetConn().(*guardConn)
	return &frameWatch{Conn: c, guard: g, preface: clientPrefaceLen}
}

// Read waits while the guard throttles the connection, then reads from
// the TLS connection and scans what it read.
func (f *frameWatch) Read(b []byte) (int, error) {
	if f.guard == nil {
		return f.Conn.Read(b)
	}
	f.guard.wait()
	n, err := f.Conn.Read(b)
	f.scan(b[:n])
	return n, err
}

// scan advances the frame parser over p and reports RST_STREAM frames and
// PING and SETTINGS frames that are not acknowledgements.
func (f *frameWatch) scan(p []byte) {
	for len(p) > 0 {
		switch {
		case f.preface > 0:
			k := min(f.preface, len(p))
			f.preface -= k
			p = p[k:]
		case f.skip > 0:
			k := int(min(f.skip, uint32(len(p))))
			f.skip -= uint32(k)
			p = p[k:]
		default:
			k := copy(f.hdr[f.hdrN:], p)
			f.hdrN += k
			p = p[k:]
			if f.hdrN < frameHeaderLen {
				return
			}
			f.hdrN = 0
			f.skip = uint32(f.hdr[0])<<16 | uint32(f.hdr[1])<<8 | uint32(f.hdr[2])
			switch f.hdr[3] {
			case frameRSTStream:
				f.guard.clientReset()
			case frameSettings, framePing:
				if f.hdr[4]&flagAck == 0 {
					f.guard.clientControl()
				}
			}
		}
	}
}
