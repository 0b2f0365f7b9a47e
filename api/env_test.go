package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/internal/testutil"
)

// Client keys are generated once per test binary: RSA key generation is slow.
var (
	keysOnce                        sync.Once
	ed25519Key, ecdsaKey, ecdsaKey2 crypto.Signer
	rsaKey                          crypto.Signer
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		ed25519Key = ed
		ecdsaKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ecdsaKey2, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	if ed25519Key == nil || ecdsaKey == nil || ecdsaKey2 == nil || rsaKey == nil {
		t.Fatal("generating client keys failed")
	}
}

// newCert returns a certificate for key, signed by key itself (isCA false)
// or a CA certificate, and its KES identity computed independently of the
// code under test.
func newCert(t testing.TB, key crypto.Signer, isCA bool) (*x509.Certificate, string) {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "keyraft-api-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return cert, hex.EncodeToString(sum[:])
}

// tlsCert bundles a chain (first certificate is the one whose key signs).
func tlsCert(key crypto.Signer, chain ...*x509.Certificate) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a Server behind a real TLS (HTTP/2) test server with three
// clients: the admin (Ed25519), a policy-bound user (ECDSA) and a second
// user (RSA).
type env struct {
	t       testing.TB
	backend *fakeBackend
	srv     *Server
	ts      *httptest.Server
	logger  hclog.InterceptLogger
	logs    *syncBuffer
	audit   *syncBuffer

	admin, user, rsaUser, stranger *client
}

// client is an HTTP client with one client certificate.
type client struct {
	t        testing.TB
	c        *http.Client
	base     string
	identity string
}

type envOption func(*Config, *tls.Config)

func withRoutes(routes map[string]RouteConfig) envOption {
	return func(c *Config, _ *tls.Config) { c.Routes = routes }
}

func withClientAuth(a tls.ClientAuthType) envOption {
	return func(_ *Config, tc *tls.Config) { tc.ClientAuth = a }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	testKeys(t)
	adminCert, adminID := newCert(t, ed25519Key, false)
	userCert, userID := newCert(t, ecdsaKey, false)
	rsaCert, rsaID := newCert(t, rsaKey, false)
	strangerCert, strangerID := newCert(t, ecdsaKey2, false)

	e := &env{t: t, backend: newFakeBackend(adminID, "tenant-1"), logs: &syncBuffer{}, audit: &syncBuffer{}}
	e.logger = hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: e.logs})
	cfg := Config{Backend: e.backend, Logger: e.logger, AuditOut: e.audit, Version: "v-test", Commit: "c0ffee"}
	tlsCfg := &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	for _, o := range opts {
		o(&cfg, tlsCfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.logger.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: hclog.Error, Output: srv.ErrorLogWriter()}))

	e.ts = httptest.NewUnstartedServer(srv)
	e.ts.TLS = tlsCfg
	e.ts.EnableHTTP2 = true
	e.ts.StartTLS()
	t.Cleanup(e.ts.Close)
	t.Cleanup(func() { _ = srv.Close() }) // runs first: ends log streams

	e.admin = e.newClient(adminID, tlsCert(ed25519Key, adminCert))
	e.user = e.newClient(userID, tlsCert(ecdsaKey, userCert))
	e.rsaUser = e.newClient(rsaID, tlsCert(rsaKey, rsaCert))
	e.stranger = e.newClient(strangerID, tlsCert(ecdsaKey2, strangerCert))
	return e
}

// newClient returns a client presenting certs (none if empty).
func (e *env) newClient(identity string, certs ...tls.Certificate) *client {
	tr := e.ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = certs
	e.t.Cleanup(tr.CloseIdleConnections)
	return &client{t: e.t, c: &http.Client{Transport: tr}, base: e.ts.URL, identity: identity}
}

// response is a received response with its body read.
type response struct {
	*http.Response
	body []byte
}

// JSON decodes the body into v, failing the test on error.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s %s: decoding %q: %v", r.Request.Method, r.Request.URL, r.body, err)
	}
}

// do sends a request; path is appended verbatim to the base URL and
// headers are given as name, value pairs.
func (c *client) do(method, path string, body io.Reader, headers ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{resp, b}
}

func (c *client) get(path string, headers ...string) response {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, headers...)
}

func (c *client) post(path, body string, headers ...string) response {
	c.t.Helper()
	return c.do(http.MethodPost, path, strings.NewReader(body), headers...)
}

// expectError checks a KES error response: status, JSON content type,
// explicit length and the exact message.
func expectError(t testing.TB, r response, code int, message string) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s %s: status %d (%s), want %d", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", r.Request.Method, r.Request.URL.Path, ct)
	}
	if r.ContentLength != int64(len(r.body)) {
		t.Fatalf("%s %s: Content-Length %d, body %d bytes", r.Request.Method, r.Request.URL.Path, r.ContentLength, len(r.body))
	}
	var e struct {
		Message string `json:"message"`
	}
	r.JSON(t, &e)
	if e.Message != message {
		t.Fatalf("%s %s: message %q, want %q", r.Request.Method, r.Request.URL.Path, e.Message, message)
	}
}

// expectOK checks a 200 response and returns it.
func expectOK(t testing.TB, r response) response {
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body)
	}
	return r
}

// expectEmpty checks an empty 200 response with Content-Length 0.
func expectEmpty(t testing.TB, r response) {
	t.Helper()
	expectOK(t, r)
	if len(r.body) != 0 || r.Header.Get("Content-Length") != "0" {
		t.Fatalf("%s %s: want empty body with Content-Length 0, got %q (Content-Length %q)", r.Request.Method, r.Request.URL.Path, r.body, r.Header.Get("Content-Length"))
	}
}

// expectJSON checks a 200 JSON response (one value and a newline) and
// decodes it into v.
func expectJSON(t testing.TB, r response, v any) {
	t.Helper()
	expectOK(t, r)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", r.Request.Method, r.Request.URL.Path, ct)
	}
	if !bytes.HasSuffix(r.body, []byte("\n")) || bytes.Count(r.body, []byte("\n")) != 1 {
		t.Fatalf("%s %s: body is not one line: %q", r.Request.Method, r.Request.URL.Path, r.body)
	}
	r.JSON(t, v)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// b64 is standard base64, as KES JSON encodes []byte.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
