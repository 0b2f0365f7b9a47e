package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// okHandler answers every request like a healthy node.
func okHandler(w http.ResponseWriter, r *http.Request) { cannedHandler(w, r) }

// statusHandler answers every request with code.
func statusHandler(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { fail(w, code, http.StatusText(code)) }
}

// abortHandler breaks the connection after the request was read.
func abortHandler(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }

// hangHandler blocks until the client goes away or the test ends.
func hangHandler(t *testing.T) http.HandlerFunc {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	generate := func(c *Client) error { _, err := c.GenerateKey(ctx, "k", nil); return err }
	create := func(c *Client) error { return c.CreateKey(ctx, "k") }

	for _, tc := range []struct {
		name      string
		bad       func(t *testing.T) (endpoint string, hits func() int64)
		call      func(*Client) error
		wantErr   any // nil: success via the good node; Error: that error, no failover
		goodHits  int64
		benched   bool // the bad endpoint is benched afterwards
		badCalled bool
	}{
		{"closed port", closed, generate, nil, 1, true, false},
		{"500", server(statusHandler(500)), generate, nil, 1, true, true},
		{"503", server(statusHandler(503)), generate, nil, 1, true, true},
		{"502", server(statusHandler(502)), generate, nil, 1, true, true},
		{"aborted", server(abortHandler), generate, nil, 1, true, true},
		{"501 returned", server(statusHandler(501)), generate, Error{Code: 501, Message: "Not Implemented"}, 0, false, true},
		{"404 returned", server(func(w http.ResponseWriter, r *http.Request) { fail(w, 404, "key does not exist") }), generate, ErrKeyNotFound, 0, false, true},
		{"403 returned", server(statusHandler(403)), generate, Error{Code: 403, Message: "Forbidden"}, 0, false, true},
		{"create: closed port fails over", closed, create, nil, 1, true, false},
		{"create: 500 not retried", server(statusHandler(500)), create, Error{Code: 500, Message: "Internal Server Error"}, 0, true, true},
		{"create: aborted not retried", server(abortHandler), create, &ConnError{}, 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			badEP, badHits := tc.bad(t)
			good := newTestServer(t, okHandler)
			c := newClient(t, []string{badEP, good.URL}) // bad is tried first
			err := tc.call(c)
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
			case *ConnError:
				var ce *ConnError
				if !errors.As(err, &ce) || ce.Endpoint != "https://"+trimScheme(badEP) {
					t.Fatalf("err = %v, want ConnError for %s", err, badEP)
				}
			case error:
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
			if got := good.hits.Load(); got != tc.goodHits {
				t.Errorf("good node got %d requests, want %d", got, tc.goodHits)
			}
			if called := badHits() > 0; called != tc.badCalled {
				t.Errorf("bad node called = %v, want %v", called, tc.badCalled)
			}
			if got := c.lb.endpoints[0].isBenched(time.Now()); got != tc.benched {
				t.Errorf("bad endpoint benched = %v, want %v", got, tc.benched)
			}
			if tc.benched && tc.wantErr == nil {
				// While benched the bad node is skipped.
				before := badHits()
				if err := tc.call(c); err != nil {
					t.Fatal(err)
				}
				if badHits() != before || good.hits.Load() != tc.goodHits+1 {
					t.Errorf("benched endpoint was used again")
				}
			}
		})
	}
}

func closed(t *testing.T) (string, func() int64) {
	return closedEndpoint(t), func() int64 { return 0 }
}

func server(h http.HandlerFunc) func(t *testing.T) (string, func() int64) {
	return func(t *testing.T) (string, func() int64) {
		s := newTestServer(t, h)
		return s.URL, s.hits.Load
	}
}

func trimScheme(ep string) string {
	for _, p := range []string{"https://", "http://"} {
		if len(ep) > len(p) && ep[:len(p)] == p {
			return ep[len(p):]
		}
	}
	return ep
}

// TestHangPastDeadline: a node that never answers makes the request fail with
// the caller's deadline; it is not benched for the caller's impatience.
func TestHangPastDeadline(t *testing.T) {
	hang := newTestServer(t, hangHandler(t))
	good := newTestServer(t, okHandler)
	c := newClient(t, []string{hang.URL, good.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.GenerateKey(ctx, "k", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if good.hits.Load() != 0 {
		t.Error("request went on after the deadline")
	}
	if c.lb.endpoints[0].isBenched(time.Now()) {
		t.Error("endpoint benched although the caller's context expired")
	}
}

// TestAttemptTimeout: with an attempt timeout, a hanging node is benched and
// the request completes on the next node within the caller's deadline.
func TestAttemptTimeout(t *testing.T) {
	hang := newTestServer(t, hangHandler(t))
	good := newTestServer(t, okHandler)
	c := newClient(t, []string{hang.URL, good.URL}, WithAttemptTimeout(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Decrypt(ctx, "k", []byte{1}, nil); err != nil {
		t.Fatal(err)
	}
	if hang.hits.Load() != 1 || good.hits.Load() != 1 {
		t.Fatalf("hits hang=%d good=%d, want 1 and 1", hang.hits.Load(), good.hits.Load())
	}
	if !c.lb.endpoints[0].isBenched(time.Now()) {
		t.Fatal("hanging endpoint not benched")
	}
	// A single hanging node: the ConnError names the attempt timeout.
	solo := newClient(t, []string{hang.URL}, WithAttemptTimeout(50*time.Millisecond))
	_, err := solo.Decrypt(ctx, "k", []byte{1}, nil)
	var ce *ConnError
	if !errors.As(err, &ce) || !errors.Is(err, errAttemptTimeout) {
		t.Fatalf("err = %v, want ConnError wrapping the attempt timeout", err)
	}
}

// TestAllEndpointsFail returns the last failure.
func TestAllEndpointsFail(t *testing.T) {
	a := newTestServer(t, statusHandler(500))
	b := newTestServer(t, statusHandler(503))
	c := newClient(t, []string{a.URL, b.URL})
	_, err := c.Encrypt(context.Background(), "k", []byte("x"), nil)
	if want := (Error{Code: 503, Message: "Service Unavailable"}); !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	// Both benched: the next request still tries them (last resort).
	_, err = c.Encrypt(context.Background(), "k", []byte("x"), nil)
	if err == nil || a.hits.Load() != 2 || b.hits.Load() != 2 {
		t.Fatalf("err=%v hits a=%d b=%d, want both retried", err, a.hits.Load(), b.hits.Load())
	}
}

// TestSkipThenProbe uses an injected clock: a failed endpoint is skipped for
// the cool-down, then probed once; a successful probe returns it to service,
// a failed one benches it again.
func TestSkipThenProbe(t *testing.T) {
	var mu sync.Mutex
	failing := true
	flaky := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := failing
		mu.Unlock()
		if f {
			fail(w, 500, "boom")
			return
		}
		okHandler(w, r)
	})
	setFailing := func(v bool) { mu.Lock(); failing = v; mu.Unlock() }
	good := newTestServer(t, okHandler)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newClient(t, []string{flaky.URL, good.URL}, WithEndpointCooldown(10*time.Second))
	c.lb.now = clock.Now
	ctx := context.Background()
	status := func() {
		t.Helper()
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step string, flakyHits, goodHits int64) {
		t.Helper()
		if f, g := flaky.hits.Load(), good.hits.Load(); f != flakyHits || g != goodHits {
			t.Fatalf("%s: hits flaky=%d good=%d, want %d and %d", step, f, g, flakyHits, goodHits)
		}
	}

	status()
	expect("first request fails over", 1, 1)
	clock.Advance(9 * time.Second)
	status()
	expect("skipped during cool-down", 1, 2)
	clock.Advance(time.Second)
	status()
	expect("probe after cool-down fails", 2, 3)
	clock.Advance(5 * time.Second)
	status()
	expect("benched again from the failed probe", 2, 4)
	clock.Advance(5 * time.Second)
	setFailing(false)
	status()
	expect("successful probe", 3, 4)
	status()
	expect("back in service", 4, 4)
	if c.lb.endpoints[0].isBenched(clock.Now()) {
		t.Fatal("endpoint still benched")
	}
}

// TestProbeOnlyOnce: while a probe is in flight no second request probes.
func TestProbeOnlyOnce(t *testing.T) {
	now := time.Now()
	ep := &endpoint{url: "x"}
	ep.fail(now, time.Second)
	if ep.acquire(now, false) {
		t.Fatal("benched endpoint acquired")
	}
	later := now.Add(time.Second)
	if !ep.acquire(later, false) {
		t.Fatal("probe not allowed after the cool-down")
	}
	if ep.acquire(later, false) {
		t.Fatal("second concurrent probe allowed")
	}
	if !ep.acquire(later, true) {
		t.Fatal("forced use refused")
	}
	ep.release()
	if !ep.acquire(later, false) {
		t.Fatal("probe not allowed again after release")
	}
	ep.healthy()
	if !ep.acquire(now, false) || ep.isBenched(now) {
		t.Fatal("healthy endpoint refused")
	}
}

// TestConcurrentRequests exercises the shared health state under -race.
func TestConcurrentRequests(t *testing.T) {
	bad := newTestServer(t, statusHandler(500))
	good := newTestServer(t, okHandler)
	c := newClient(t, []string{bad.URL, closedEndpoint(t), good.URL}, WithEndpointCooldown(time.Millisecond))
	c.lb.perm = newBalancer(nil, time.Second).perm // random order
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			if _, err := c.GenerateKey(context.Background(), "k", nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if good.hits.Load() != 40 {
		t.Fatalf("good node answered %d of 40", good.hits.Load())
	}
}
