package client

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/testutil"
)

// testKey is the API key every test client authenticates with (spec §3.5 vector).
var testKey = mustAPIKey("kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs")

const testIdentity = "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"

func mustAPIKey(s string) identity.APIKey {
	k, err := identity.ParseAPIKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

// seen is what a test server observed about one request.
type seen struct {
	Method, Path, RawPath, Query string
	Enclave                      string
	HasEnclave                   bool
	Identity                     string
	Body                         []byte
}

// testServer is an httptest TLS server (HTTP/2 enabled) that requires a client
// certificate, records requests and counts them.
type testServer struct {
	*httptest.Server
	hits atomic.Int64

	mu   sync.Mutex
	reqs []seen
}

func (s *testServer) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("server saw no request")
	}
	return s.reqs[len(s.reqs)-1]
}

func newTestServer(t *testing.T, h http.HandlerFunc) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Enclave: r.Header.Get(EnclaveHeader), Body: body,
		}
		_, s.HasEnclave = r.Header[EnclaveHeader]
		if id, err := identity.FromConnectionState(r.TLS); err == nil {
			s.Identity = id
		}
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, s)
		ts.mu.Unlock()
		ts.hits.Add(1)
		h(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ts.Server = srv
	return ts
}

// newClient returns a client for the servers' endpoints, trusting the
// httptest certificate and authenticating with testKey. Endpoints are tried
// in the given order.
func newClient(t *testing.T, endpoints []string, opts ...Option) *Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(testCert(t))
	c, err := New(endpoints, append([]Option{WithAPIKey(testKey), WithRootCAs(pool)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.lb.perm = inOrder
	return c
}

// testCert returns the certificate all httptest TLS servers share.
func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return srv.Certificate()
}

// inOrder is a deterministic endpoint order.
func inOrder(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// closedEndpoint returns a loopback address nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln := testutil.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// replyJSON writes v as a KES success response.
func replyJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail writes a KES error response.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
