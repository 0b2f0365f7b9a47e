package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/testutil"
)

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a backend succeeded")
	}
	b := newFakeBackend("admin")
	if _, err := New(Config{Backend: b, Routes: map[string]RouteConfig{"/v1/nope": {SkipAuth: true}}}); err == nil || !strings.Contains(err.Error(), "/v1/nope") {
		t.Fatalf("unknown route override: err = %v", err)
	}
	// Two servers can share nothing but must each have their own registry.
	s1, err := New(Config{Backend: b, AuditOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Backend: b, AuditOut: io.Discard}); err != nil {
		t.Fatalf("second server: %v", err)
	}
	if _, err := New(Config{Backend: b, Registry: s1.Registry()}); err == nil {
		t.Fatal("registering the KES metrics twice in one registry succeeded")
	}
}

func TestHTTP2AndVersion(t *testing.T) {
	e := newEnv(t)
	r := e.admin.get("/version")
	if r.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", r.Proto)
	}
	var v struct{ Version, Commit string }
	expectJSON(t, r, &v)
	if v.Version != "v-test" || v.Commit != "c0ffee" {
		t.Fatalf("version = %+v", v)
	}
}

func TestUnknownPath(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/v1", "/v1/key", "/v1/key/unknown/x", "/v1/secret/create/x", "/v1/enclave/create/x", "/v1/identity/self/describe/", "/version/"} {
		r := e.admin.get(p)
		if r.StatusCode != http.StatusNotFound || string(r.body) != "404 page not found\n" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: %d %q %q", p, r.StatusCode, r.Header.Get("Content-Type"), r.body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/v1/key/create/k", http.MethodPut},
		{http.MethodDelete, "/v1/key/generate/k", http.MethodPut},
		{http.MethodPost, "/v1/key/describe/k", http.MethodGet},
		{http.MethodGet, "/v1/key/delete/k", http.MethodDelete},
		{http.MethodPut, "/v1/key/bulk/decrypt/k", http.MethodPost},
		{http.MethodGet, "/v1/key/hmac/k", http.MethodPut},
		{http.MethodPost, "/v1/status", http.MethodGet},
		{http.MethodPut, "/version", http.MethodGet},
		{http.MethodPost, "/v1/log/audit", http.MethodGet},
		{http.MethodHead, "/v1/key/list/", http.MethodGet},
	} {
		// Method errors come before authentication: the stranger gets 405 too.
		r := e.stranger.do(tc.method, tc.path, nil)
		if got := r.Header.Get("Accept"); got != tc.want {
			t.Errorf("%s %s: Accept %q, want %q", tc.method, tc.path, got, tc.want)
		}
		if tc.method == http.MethodHead {
			if r.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("HEAD: status %d", r.StatusCode)
			}
			continue
		}
		expectError(t, r, http.StatusMethodNotAllowed, fmt.Sprintf("received method '%s' expected '%s'", tc.method, tc.want))
	}
}

// TestEveryRoute calls every route with its method (and POST for PUT
// routes) as the admin.
func TestEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.backend.setPolicy("default", "p", []string{"/v1/status"}, nil, e.user.identity)
	ctx := base64.StdEncoding.EncodeToString([]byte(`{"bucket":"bucket/object"}`))
	dataKey := base64.StdEncoding.EncodeToString(make([]byte, 32))

	for _, method := range []string{http.MethodPut, http.MethodPost} {
		k := "k-" + strings.ToLower(method)
		expectEmpty(t, e.admin.do(method, "/v1/key/create/"+k, nil))
		expectEmpty(t, e.admin.do(method, "/v1/key/import/i-"+k, strings.NewReader(`{"key":"`+dataKey+`","cipher":"AES256"}`)))

		var gen struct{ Plaintext, Ciphertext []byte }
		expectJSON(t, e.admin.do(method, "/v1/key/generate/"+k, strings.NewReader(`{"context":"`+ctx+`"}`)), &gen)
		if len(gen.Plaintext) != 32 || len(gen.Ciphertext) == 0 {
			t.Fatalf("generate: %+v", gen)
		}
		var dec struct{ Plaintext []byte }
		expectJSON(t, e.admin.do(method, "/v1/key/decrypt/"+k, strings.NewReader(fmt.Sprintf(`{"ciphertext":%q,"context":%q,"version":""}`, base64.StdEncoding.EncodeToString(gen.Ciphertext), ctx))), &dec)
		if string(dec.Plaintext) != string(gen.Plaintext) {
			t.Fatal("decrypt returned a different plaintext")
		}
		var enc struct{ Ciphertext []byte }
		expectJSON(t, e.admin.do(method, "/v1/key/encrypt/"+k, strings.NewReader(`{"plaintext":"aGVsbG8=","context":"`+ctx+`"}`)), &enc)
		expectJSON(t, e.admin.do(method, "/v1/key/decrypt/"+k, strings.NewReader(fmt.Sprintf(`{"ciphertext":%q,"context":%q}`, base64.StdEncoding.EncodeToString(enc.Ciphertext), ctx))), &dec)
		if string(dec.Plaintext) != "hello" {
			t.Fatalf("encrypt/decrypt round trip: %q", dec.Plaintext)
		}
		var mac struct{ HMAC []byte }
		expectJSON(t, e.admin.do(method, "/v1/key/hmac/"+k, strings.NewReader(`{"message":"aGVsbG8="}`)), &mac)
		if len(mac.HMAC) != 32 {
			t.Fatalf("hmac: %d bytes", len(mac.HMAC))
		}
	}

	var desc map[string]any
	expectJSON(t, e.admin.get("/v1/key/describe/k-put"), &desc)
	if desc["name"] != "k-put" || desc["algorithm"] != "AES256" || desc["created_by"] != e.admin.identity || desc["created_at"] == nil || desc["id"] != nil {
		t.Fatalf("describe = %v", desc)
	}
	var list listResponse
	expectJSON(t, e.admin.get("/v1/key/list/*"), &list)
	if strings.Join(list.Names, ",") != "i-k-post,i-k-put,k-post,k-put" {
		t.Fatalf("list = %v", list.Names)
	}
	expectEmpty(t, e.admin.do(http.MethodDelete, "/v1/key/delete/k-post", nil))
	expectError(t, e.admin.get("/v1/key/describe/k-post"), http.StatusNotFound, "key does not exist")

	expectJSON(t, e.admin.get("/v1/policy/describe/p"), &desc)
	expectJSON(t, e.admin.get("/v1/policy/read/p"), &desc)
	expectJSON(t, e.admin.get("/v1/policy/list/"), &list)
	expectJSON(t, e.admin.get("/v1/identity/describe/"+e.user.identity), &desc)
	expectJSON(t, e.admin.get("/v1/identity/list/"), &desc)
	expectJSON(t, e.admin.get("/v1/identity/self/describe"), &desc)
	expectEmpty(t, e.admin.get("/v1/ready"))
	expectJSON(t, e.admin.get("/v1/status"), &desc)
	expectJSON(t, e.admin.get("/v1/api"), &[]any{})
	if r := expectOK(t, e.admin.get("/v1/metrics")); !strings.Contains(string(r.body), "kes_http_request_success") {
		t.Fatal("metrics lack kes_http_request_success")
	}
}

func TestListAPIs(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]RouteConfig{"/v1/status": {Timeout: 30 * time.Second}, "/v1/key/generate": {Timeout: 2 * time.Second}}))
	var apis []struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		MaxBody int64  `json:"max_body"`
		Timeout int64  `json:"timeout"`
	}
	expectJSON(t, e.admin.get("/v1/api"), &apis)
	// KES's 23, /v1/key/protect/, the recovery window's three and the
	// key versions' four
	if len(apis) != len(routeTable()) || len(apis) != 31 {
		t.Fatalf("%d APIs, want 31", len(apis))
	}
	got := map[string]string{}
	for _, a := range apis {
		got[a.Path] = fmt.Sprintf("%s %d %d", a.Method, a.MaxBody, a.Timeout)
	}
	for path, want := range map[string]string{
		"/version":                   "GET 0 10",
		"/v1/ready":                  "GET 0 15",
		"/v1/status":                 "GET 0 30",
		"/v1/metrics":                "GET 0 15",
		"/v1/api":                    "GET 0 10",
		"/v1/key/create/":            "PUT 0 15",
		"/v1/key/import/":            "PUT 1000000 15",
		"/v1/key/describe/":          "GET 0 15",
		"/v1/key/list/":              "GET 0 15",
		"/v1/key/delete/":            "DELETE 0 15",
		"/v1/key/generate/":          "PUT 1000000 2",
		"/v1/key/encrypt/":           "PUT 1000000 15",
		"/v1/key/decrypt/":           "PUT 1000000 15",
		"/v1/key/hmac/":              "PUT 1000000 15",
		"/v1/key/bulk/decrypt/":      "POST 1000000 15",
		"/v1/key/deleted/":           "GET 0 15",
		"/v1/key/rotate/":            "PUT 0 15",
		"/v1/key/min-version/":       "PUT 1000000 15",
		"/v1/key/rewrap/":            "PUT 1000000 15",
		"/v1/key/version/":           "DELETE 0 15",
		"/v1/key/restore/":           "PUT 0 15",
		"/v1/key/purge/":             "DELETE 0 15",
		"/v1/policy/describe/":       "GET 0 15",
		"/v1/policy/read/":           "GET 0 15",
		"/v1/policy/list/":           "GET 0 15",
		"/v1/identity/describe/":     "GET 0 15",
		"/v1/identity/list/":         "GET 0 15",
		"/v1/identity/self/describe": "GET 0 15",
		"/v1/log/error":              "GET 0 0",
		"/v1/log/audit":              "GET 0 0",
	} {
		if got[path] != want {
			t.Errorf("%s: %q, want %q", path, got[path], want)
		}
	}
	infos := e.srv.APIs()
	for i := 1; i < len(infos); i++ {
		if infos[i-1].Path >= infos[i].Path {
			t.Fatalf("APIs not sorted: %s before %s", infos[i-1].Path, infos[i].Path)
		}
	}
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.post("/v1/key/create/k", ""))
	pad := func(n int) string { // a valid encrypt body of exactly n bytes
		const head, tail = `{"plaintext":"", "pad":"`, `"}`
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	expectOK(t, e.admin.post("/v1/key/encrypt/k", pad(maxBody)))
	expectError(t, e.admin.post("/v1/key/encrypt/k", pad(maxBody+1)), http.StatusBadRequest, "invalid request body")
	// Unknown length (streamed body): the limit still applies.
	stream := func(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }
	expectOK(t, e.admin.do(http.MethodPut, "/v1/key/encrypt/k", stream(pad(1000))))
	expectError(t, e.admin.do(http.MethodPut, "/v1/key/encrypt/k", stream(pad(maxBody+1))), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.do(http.MethodPut, "/v1/key/generate/k", stream(pad(maxBody+10))), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.post("/v1/key/bulk/decrypt/k", "["+strings.Repeat(`{},`, maxBody/3)+"{}]"), http.StatusBadRequest, "invalid request body")

	// Bodies: malformed or missing where required.
	expectError(t, e.admin.post("/v1/key/encrypt/k", ""), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.post("/v1/key/decrypt/k", "{"), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.do(http.MethodPut, "/v1/key/hmac/k", nil), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.post("/v1/key/decrypt/k", `{"ciphertext":"not base64!"}`), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.post("/v1/key/generate/k", `nope`), http.StatusBadRequest, "invalid request body")
	expectError(t, e.admin.post("/v1/key/import/j", `{"key":1}`), http.StatusBadRequest, "invalid import key request body")
	expectError(t, e.admin.post("/v1/key/import/j", ``), http.StatusBadRequest, "invalid import key request body")
	// Generate works without a body, with {} and with a streamed body.
	expectOK(t, e.admin.post("/v1/key/generate/k", ""))
	expectOK(t, e.admin.post("/v1/key/generate/k", "{}"))
	expectOK(t, e.admin.do(http.MethodPut, "/v1/key/generate/k", stream(`{"context":"YQ=="}`)))
	expectOK(t, e.admin.do(http.MethodPut, "/v1/key/generate/k", stream(``)))
}

func TestRouteDeadlines(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]RouteConfig{"/v1/key/generate/": {Timeout: 40 * time.Millisecond}}))
	expectEmpty(t, e.admin.post("/v1/key/create/k", ""))
	expectOK(t, e.admin.post("/v1/key/generate/k", ""))
	expectOK(t, e.admin.post("/v1/key/encrypt/k", `{"plaintext":""}`))
	// The last call recorded for "k" is the encrypt: 15 s route timeout.
	if d := e.backend.deadline("k"); d <= 14*time.Second || d > 15*time.Second {
		t.Fatalf("encrypt deadline in %v, want ≈15s", d)
	}
	expectOK(t, e.admin.post("/v1/key/generate/k", ""))
	if d := e.backend.deadline("k"); d <= 0 || d > 40*time.Millisecond {
		t.Fatalf("generate deadline in %v, want ≤ 40ms", d)
	}
}

// TestNewHTTPServer serves the API through NewHTTPServer on a real
// listener and checks HTTP/2, the server settings and that Shutdown ends
// an open log stream.
func TestNewHTTPServer(t *testing.T) {
	testKeys(t)
	serverCert, _ := newCert(t, ecdsaKey, false)
	adminCert, adminID := newCert(t, ed25519Key, false)
	srv, err := New(Config{Backend: newFakeBackend(adminID), AuditOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := NewHTTPServer(srv, &tls.Config{Certificates: []tls.Certificate{tlsCert(ecdsaKey, serverCert)}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	if hs.ReadHeaderTimeout != 5*time.Second || hs.IdleTimeout != 90*time.Second || hs.WriteTimeout != 0 || hs.ReadTimeout != 0 {
		t.Fatalf("timeouts: %v %v %v %v", hs.ReadHeaderTimeout, hs.IdleTimeout, hs.WriteTimeout, hs.ReadTimeout)
	}
	if got := strings.Join(hs.TLSConfig.NextProtos, ","); got != "h2,http/1.1" || hs.TLSConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config: NextProtos %q, MinVersion %x", got, hs.TLSConfig.MinVersion)
	}
	l := testutil.Listen(t)
	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(l, "", "") }()

	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{tlsCert(ed25519Key, adminCert)},
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	base := "https://" + l.Addr().String()

	resp, err := c.Get(base + "/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET /version: %d over %s", resp.StatusCode, resp.Proto)
	}

	stream, err := c.Get(base + "/v1/log/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK || stream.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("log stream: %d %q", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open log stream: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("ServeTLS returned %v", err)
	}
	if _, err := bufio.NewReader(stream.Body).ReadString('\n'); err == nil {
		t.Fatal("log stream still delivering after Shutdown")
	}
}
