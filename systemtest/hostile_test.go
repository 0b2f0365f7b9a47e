package systemtest

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
)

// hostileNode starts a dev node whose generate route has a 2 s deadline.
func hostileNode(t *testing.T) (*server.Server, identity.APIKey, *client.Client) {
	t.Helper()
	cfg, key, err := server.DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.API = map[string]config.API{"/v1/key/generate/": {Timeout: 2 * time.Second}}
	ln := testutil.Listen(t)
	rln := testutil.Listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg, server.Options{
		APIListener: ln, RaftListener: rln, AuditOut: io.Discard, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := client.New([]string{"https://" + s.Addr().String()}, client.WithAPIKey(key), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	return s, key, c
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestStalledBodiesDoNotReserveMemory: 300 HTTP/2 requests that announce a
// 1,000,000-byte body and send nothing must not make the node allocate
// the announced bytes (before issue 10: +300 MB).
func TestStalledBodiesDoNotReserveMemory(t *testing.T) {
	s, key, c := hostileNode(t)
	cert, err := key.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	idle := heapInUse()
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}} //nolint:gosec // test node
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	const n = 300
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+s.Addr().String()+"/v1/key/decrypt/k", pr)
			req.ContentLength = 1_000_000
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, "all stalled requests in flight", func() bool {
		m, err := c.Metrics(context.Background())
		return err == nil && m.Value("kes_http_request_active") >= n
	})
	if grown := int64(heapInUse()) - int64(idle); grown > 50<<20 {
		t.Fatalf("heap grew by %d MB with %d stalled 1 MB bodies", grown>>20, n)
	}
}

// TestSlowBodiesAreCutAtTheDeadline: bodies sent a byte at a time, over
// HTTP/1.1 and over HTTP/2, end at the route's deadline (2 s here)
// instead of holding the connection or stream forever.
func TestSlowBodiesAreCutAtTheDeadline(t *testing.T) {
	s, key, _ := hostileNode(t)
	cert, err := key.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	// check waits for the n requests started at start to end.
	check := func(t *testing.T, start time.Time, cut <-chan time.Duration) {
		for range n {
			select {
			case d := <-cut:
				if d < 0 {
					t.Fatal("dial failed")
				}
				if d < 1500*time.Millisecond {
					t.Fatalf("request ended after %v, before the 2 s deadline", d)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a slow body was not cut within 30 s (route deadline 2 s)")
			}
		}
		t.Logf("%d slow bodies cut %v after the start", n, time.Since(start).Round(time.Millisecond))
	}

	t.Run("http1.1", func(t *testing.T) {
		cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}} //nolint:gosec // test node
		cut := make(chan time.Duration, n)
		start := time.Now()
		for range n {
			go func() {
				conn, err := tls.Dial("tcp", s.Addr().String(), cfg)
				if err != nil {
					cut <- -1
					return
				}
				defer conn.Close()
				_, _ = io.WriteString(conn, "PUT /v1/key/generate/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
				done := make(chan struct{})
				go func() {
					_, _ = conn.Read(make([]byte, 1))
					close(done)
				}()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						cut <- time.Since(start)
						return
					case <-tick.C:
						if _, err := conn.Write([]byte{'{'}); err != nil {
							<-done
							cut <- time.Since(start)
							return
						}
					}
				}
			}()
		}
		check(t, start, cut)
	})

	t.Run("h2", func(t *testing.T) {
		tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}} //nolint:gosec // test node
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		cut := make(chan time.Duration, n)
		start := time.Now()
		for range n {
			go func() {
				body := &trickle{stop: make(chan struct{})}
				defer close(body.stop)
				req, err := http.NewRequest(http.MethodPut, "https://"+s.Addr().String()+"/v1/key/generate/k", body)
				if err != nil {
					cut <- -1
					return
				}
				req.ContentLength = 1000
				resp, err := client.Do(req)
				if err == nil {
					if resp.ProtoMajor != 2 {
						t.Errorf("answered over %s, want HTTP/2", resp.Proto)
					}
					resp.Body.Close()
				}
				cut <- time.Since(start)
			}()
		}
		check(t, start, cut)
	})
}

// trickle is a request body that yields one byte every 200 ms until stop
// is closed.
type trickle struct{ stop chan struct{} }

func (b *trickle) Read(p []byte) (int, error) {
	select {
	case <-b.stop:
		return 0, io.EOF
	case <-time.After(200 * time.Millisecond): // the trickle's pace, not a wait for an event
	}
	p[0] = '{'
	return 1, nil
}
