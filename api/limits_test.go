package api

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyraft/keyraft/internal/testutil"
)

// chunkReader yields its data n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(r.n, len(p), len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

func TestReadBodyGrowsWithBytesReceived(t *testing.T) {
	for _, tc := range []struct {
		name     string
		announce int64
		send     int
		ok       bool
	}{
		{"announced 1 MB, 10 bytes arrive", 1_000_000, 10, false},
		{"announced 1 MB, all arrive", 1_000_000, 1_000_000, true},
		{"unknown length", -1, 5000, true},
		{"unknown length too large", -1, maxBody + 1, false},
		{"empty", 0, 0, true},
		{"announced too large", maxBody + 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{'x'}, tc.send)
			req := httptest.NewRequest(http.MethodPut, "/", nil)
			var body io.Reader = &chunkReader{data: data, n: 700}
			if tc.announce >= 0 {
				body = io.LimitReader(body, tc.announce)
			}
			rec := httptest.NewRecorder()
			req.Body = http.MaxBytesReader(rec, io.NopCloser(body), maxBody)
			req.ContentLength = tc.announce
			if tc.announce >= 0 && int64(tc.send) < tc.announce {
				req.Body = io.NopCloser(io.MultiReader(body, errReader{io.ErrUnexpectedEOF}))
			}
			b, err := readBody(req)
			if !tc.ok {
				if !errors.Is(err, errInvalidBody) {
					t.Fatalf("err = %v, want errInvalidBody", err)
				}
				return
			}
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(b), err, len(data))
			}
			if limit := max(2*len(data), initialBodyBuffer); cap(b) > limit {
				t.Fatalf("cap %d for %d bytes: grows faster than the data", cap(b), len(data))
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestIdentityLimiter(t *testing.T) {
	l := newIdentityLimiter(2)
	for i := range 2 {
		if !l.acquire("a") {
			t.Fatalf("request %d of a rejected", i+1)
		}
	}
	if l.acquire("a") {
		t.Fatal("third concurrent request of a admitted")
	}
	if !l.acquire("b") {
		t.Fatal("b limited by a's requests")
	}
	l.release("a")
	if !l.acquire("a") {
		t.Fatal("slot not returned")
	}
	var none *identityLimiter
	if !none.acquire("a") {
		t.Fatal("nil limiter rejected")
	}
	none.release("a")
}

func TestTooManyRequestsIs429(t *testing.T) {
	e := newEnv(t)
	e.srv.limiter = newIdentityLimiter(1)
	if !e.srv.limiter.acquire(e.admin.identity) {
		t.Fatal("acquire")
	}
	r := e.admin.post("/v1/key/create/x", "")
	expectError(t, r, http.StatusTooManyRequests, "too many requests")
	e.srv.limiter.release(e.admin.identity)
	if r := e.admin.post("/v1/key/create/x", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("after release: %d %s", r.StatusCode, r.body)
	}
}

func TestGuardListenerCapsConnections(t *testing.T) {
	ln := testutil.Listen(t)
	rejected := make(chan struct{}, 10)
	gl := GuardListener(ln, GuardOptions{MaxConnections: 1, Rejected: func() { rejected <- struct{}{} }})
	defer gl.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	first := <-accepted
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	<-rejected
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection not closed")
	}
	first.Close() // frees the slot
	c3, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("slot not released on Close")
	}
}

// TestGuardListenerPacesAccept: with AcceptRate 50 (burst 5), 15
// connections cannot all be accepted in less than (15-5)/50 s, the ones
// beyond the burst are counted as paced, and Close ends a pacing wait (an
// Accept that would otherwise return a connection returns an error).
func TestGuardListenerPacesAccept(t *testing.T) {
	ln := testutil.Listen(t)
	var paced atomic.Int32
	start := time.Now()
	gl := GuardListener(ln, GuardOptions{AcceptRate: 50, Paced: func() { paced.Add(1) }})
	defer gl.Close()
	const n = 15
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for range n {
		c, err := gl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if elapsed := time.Since(start); elapsed < 190*time.Millisecond {
		t.Fatalf("%d connections accepted in %v: not paced", n, elapsed)
	}
	if p := paced.Load(); p < 1 || p > n-5 {
		t.Fatalf("paced = %d, want 1..%d", p, n-5)
	}

	waiting := make(chan struct{}, 2)
	slow := GuardListener(testutil.Listen(t), GuardOptions{AcceptRate: 1, Paced: func() { waiting <- struct{}{} }})
	addr := slow.Addr().String()
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if c, err := slow.Accept(); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	done := make(chan error, 1)
	go func() {
		c, err := slow.Accept() // waits a second for its token
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	<-waiting // the second Accept is waiting for its token
	slow.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	srv, err := NewHTTPServer(http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.HTTP2 == nil || srv.HTTP2.MaxConcurrentStreams != MaxConcurrentStreams || srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Fatalf("limits not set: %+v", srv)
	}
	if !strings.Contains(strings.Join(srv.TLSConfig.NextProtos, ","), "h2") {
		t.Fatal("no h2")
	}
}

// TestResetThrottleDelaysReads: a connection beyond the reset rate waits
// before its next read for as long as it is in debt (at most
// maxResetDelay at a time), and Close ends the wait.
func TestResetThrottleDelaysReads(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	g := &guardConn{Conn: a, closed: make(chan struct{}), resets: rate.NewLimiter(resetRate, resetBurst)}
	start := time.Now()
	g.wait()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("unthrottled connection waited %v", d)
	}
	for range resetBurst + resetRate/2 { // half a second beyond the burst
		g.clientReset()
	}
	start = time.Now()
	g.wait()
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("wait after %d resets took %v; want about 0.5 s", resetBurst+resetRate/2, d)
	}
	for range 10 * resetRate { // ten seconds in debt: more than one wait
		g.clientReset()
	}
	start = time.Now()
	time.AfterFunc(50*time.Millisecond, func() { g.Close() }) // mid-wait
	g.wait()
	if d := time.Since(start); d > maxResetDelay/2 {
		t.Fatalf("wait took %v after Close; want it ended at the Close", d)
	}
}
