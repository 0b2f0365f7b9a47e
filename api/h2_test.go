package api

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/time/rate"

	"github.com/keyraft/keyraft/internal/testutil"
)

// TestFrameWatchCountsFramesAcrossSplits feeds a client's byte stream
// (preface, SETTINGS, HEADERS with a payload that contains bytes equal to
// the RST_STREAM type, DATA, RST_STREAM frames, PINGs and SETTINGS with and
// without ACK) to the frame parser in random pieces and checks it finds
// exactly the RST_STREAM frames and the PING and SETTINGS frames that are
// not acknowledgements.
func TestFrameWatchCountsFramesAcrossSplits(t *testing.T) {
	var wire bytes.Buffer
	wire.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&wire, nil)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	const resets = 37
	for i := range resets {
		id := uint32(2*i + 1)
		block := bytes.Repeat([]byte{frameRSTStream}, 40+i) // payload bytes that look like frame types
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteData(id, false, bytes.Repeat([]byte{frameRSTStream}, 3*i)); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WritePing(false, [8]byte{frameRSTStream}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WritePing(true, [8]byte{framePing}); err != nil { // an ACK: not counted
		t.Fatal(err)
	}
	if err := fr.WriteSettingsAck(); err != nil { // not counted
		t.Fatal(err)
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	const controls = 3 // the two SETTINGS and the PING that are not ACKs
	stream := wire.Bytes()
	for run := range 50 {
		g := &guardConn{closed: make(chan struct{}), resets: rate.NewLimiter(0, 1<<30), controls: rate.NewLimiter(0, 1<<30)}
		f := &frameWatch{guard: g, preface: clientPrefaceLen}
		rest := stream
		for len(rest) > 0 {
			k := 1 + rand.IntN(min(len(rest), 1+run*7))
			f.scan(rest[:k])
			rest = rest[k:]
		}
		if got := (1 << 30) - int(g.resets.Tokens()); got != resets {
			t.Fatalf("run %d: counted %d resets, want %d", run, got, resets)
		}
		if got := (1 << 30) - int(g.controls.Tokens()); got != controls {
			t.Fatalf("run %d: counted %d PING/SETTINGS, want %d", run, got, controls)
		}
		if f.hdrN != 0 || f.skip != 0 {
			t.Fatalf("run %d: parser ended mid-frame (hdrN %d, skip %d)", run, f.hdrN, f.skip)
		}
	}
}

// h2Peer is a raw HTTP/2 client connection to a test server.
type h2Peer struct {
	t  *testing.T
	c  *tls.Conn
	fr *http2.Framer
}

// newThrottleServer starts NewHTTPServer on a GuardListener over TLS and
// returns a function that opens raw HTTP/2 connections to it (preface and
// SETTINGS sent).
func newThrottleServer(t *testing.T) func() *h2Peer {
	testKeys(t)
	serverCert, _ := newCert(t, ecdsaKey, false)
	clientCert, _ := newCert(t, ed25519Key, false)
	hs, err := NewHTTPServer(http.NotFoundHandler(), &tls.Config{Certificates: []tls.Certificate{tlsCert(ecdsaKey, serverCert)}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	l := testutil.Listen(t)
	go func() { _ = hs.ServeTLS(GuardListener(l, GuardOptions{}), "", "") }()
	t.Cleanup(func() { hs.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	return func() *h2Peer {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{tlsCert(ed25519Key, clientCert)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("negotiated %q", p)
		}
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		return &h2Peer{t: t, c: c, fr: fr}
	}
}

// awaitPingAck waits (at most 10 s) for the ACK of the PING carrying data,
// skipping the server's other frames, and returns the time since start.
func (p *h2Peer) awaitPingAck(data [8]byte, start time.Time) time.Duration {
	_ = p.c.SetReadDeadline(start.Add(10 * time.Second))
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("waiting for the PING ACK: %v", err)
		}
		if pf, ok := f.(*http2.PingFrame); ok && pf.IsAck() && pf.Data == data {
			return time.Since(start)
		}
	}
}

// pingRTT sends a PING and waits for its ACK.
func (p *h2Peer) pingRTT() time.Duration {
	start := time.Now()
	data := [8]byte{7}
	if err := p.fr.WritePing(false, data); err != nil {
		p.t.Fatal(err)
	}
	return p.awaitPingAck(data, start)
}

// expectThrottled has attacker send n frames (write(i) sends the i-th)
// and then a PING, from another goroutine (once the server throttles, the
// writes may block on TCP flow control). Everything is sent before the
// clock starts, so an unthrottled server answers the PING within
// milliseconds; n is a second's worth beyond the burst, so a throttled one
// answers it at least 300 ms later. control, another connection, must
// still be answered at once.
func expectThrottled(t *testing.T, attacker, control *h2Peer, n int, what string, write func(i int) error) {
	t.Helper()
	last := [8]byte{9}
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if err := write(i); err != nil {
				written <- err
				return
			}
		}
		written <- attacker.fr.WritePing(false, last)
	}()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if d := attacker.awaitPingAck(last, time.Now()); d < 300*time.Millisecond {
		t.Fatalf("PING after %d %s answered after %v; want the connection throttled", n, what, d)
	}
	if d := control.pingRTT(); d > time.Second {
		t.Fatalf("control PING during the throttle took %v", d)
	}
}

// TestRapidResetThrottled runs the rapid-reset attack against a real
// server over TLS (NewHTTPServer on a GuardListener): a client sends
// HEADERS+RST_STREAM pairs far beyond the reset rate and then a PING. The
// server must stall that connection (the PING's ACK comes late), while a
// fresh connection that only pings is answered at once (the control).
func TestRapidResetThrottled(t *testing.T) {
	dial := newThrottleServer(t)
	control := dial()
	if d := control.pingRTT(); d > time.Second {
		t.Fatalf("control PING took %v", d)
	}
	attacker := dial()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/version"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	expectThrottled(t, attacker, control, resetBurst+resetRate, "HEADERS+RST_STREAM pairs", func(i int) error {
		id := uint32(2*i + 1)
		if err := attacker.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
			return err
		}
		return attacker.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
}

// TestPingFloodThrottled: a client that sends PINGs and SETTINGS far
// beyond the control-frame rate has its connection stalled (its last
// PING is answered late), while a fresh connection is answered at once.
// Without the throttle the server answers all of them within
// milliseconds, and a client that does not read the answers makes it
// queue up to 10,000 per connection.
func TestPingFloodThrottled(t *testing.T) {
	dial := newThrottleServer(t)
	control := dial()
	attacker := dial()
	expectThrottled(t, attacker, control, controlBurst+controlRate, "PING/SETTINGS", func(i int) error {
		if i%2 == 0 {
			return attacker.fr.WritePing(false, [8]byte{1, byte(i >> 8), byte(i)})
		}
		return attacker.fr.WriteSettings()
	})
}
