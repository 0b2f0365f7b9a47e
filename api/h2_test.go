package api

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/time/rate"
)

// TestFrameWatchCountsResetsAcrossSplits feeds a client's byte stream
// (preface, SETTINGS, HEADERS with a payload that contains a byte equal to
// the RST_STREAM type, DATA, RST_STREAM frames) to the frame parser in
// random pieces and checks it finds exactly the RST_STREAM frames.
func TestFrameWatchCountsResetsAcrossSplits(t *testing.T) {
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
	stream := wire.Bytes()
	for run := range 50 {
		g := &guardConn{closed: make(chan struct{}), resets: rate.NewLimiter(0, 1<<30)}
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
		if f.hdrN != 0 || f.skip != 0 {
			t.Fatalf("run %d: parser ended mid-frame (hdrN %d, skip %d)", run, f.hdrN, f.skip)
		}
	}
}

// TestRapidResetThrottled runs the rapid-reset attack against a real
// server over TLS (NewHTTPServer on a GuardListener): a client sends
// HEADERS+RST_STREAM pairs far beyond the reset rate and then a PING. The
// server must stall that connection (the PING's ACK comes late), while a
// fresh connection that only pings is answered at once (the control).
func TestRapidResetThrottled(t *testing.T) {
	testKeys(t)
	serverCert, _ := newCert(t, ecdsaKey, false)
	clientCert, _ := newCert(t, ed25519Key, false)
	hs, err := NewHTTPServer(http.NotFoundHandler(), &tls.Config{Certificates: []tls.Certificate{tlsCert(ecdsaKey, serverCert)}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.ServeTLS(GuardListener(l, GuardOptions{}), "", "") }()
	defer hs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	dial := func() (*tls.Conn, *http2.Framer) {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{tlsCert(ed25519Key, clientCert)}})
		if err != nil {
			t.Fatal(err)
		}
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
		return c, fr
	}
	// awaitPingAck waits (at most 10 s) for a PING ACK, skipping the
	// server's other frames, and returns the time since start.
	awaitPingAck := func(c *tls.Conn, fr *http2.Framer, start time.Time) time.Duration {
		_ = c.SetReadDeadline(start.Add(10 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for the PING ACK: %v", err)
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
				return time.Since(start)
			}
		}
	}
	// pingRTT sends a PING and waits for its ACK.
	pingRTT := func(c *tls.Conn, fr *http2.Framer) time.Duration {
		start := time.Now()
		if err := fr.WritePing(false, [8]byte{7}); err != nil {
			t.Fatal(err)
		}
		return awaitPingAck(c, fr, start)
	}

	control, cfr := dial()
	defer control.Close()
	if d := pingRTT(control, cfr); d > time.Second {
		t.Fatalf("control PING took %v", d)
	}

	attacker, afr := dial()
	defer attacker.Close()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/version"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	// Written by another goroutine: once the server throttles, the
	// writes block on TCP flow control.
	const pairs = resetBurst + resetRate // a second beyond the burst
	written := make(chan error, 1)
	go func() {
		for i := range pairs {
			id := uint32(2*i + 1)
			if err := afr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
				written <- err
				return
			}
			if err := afr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				written <- err
				return
			}
		}
		written <- afr.WritePing(false, [8]byte{9})
	}()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// Everything was sent before this point; an unthrottled server
	// answers the PING within milliseconds. resetRate resets beyond the
	// burst push the reads back by a second.
	if d := awaitPingAck(attacker, afr, time.Now()); d < 300*time.Millisecond {
		t.Fatalf("PING after %d resets answered after %v; want the connection throttled", pairs, d)
	}
	if d := pingRTT(control, cfr); d > time.Second {
		t.Fatalf("control PING during the throttle took %v", d)
	}
}
