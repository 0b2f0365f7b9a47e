package client

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/identity"
)

func TestNormalizeEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7373":             "https://127.0.0.1:7373",
		" https://kes.example:7373/": "https://kes.example:7373",
		"http://10.0.0.1:7373":       "https://10.0.0.1:7373",
		"[::1]:7373":                 "https://[::1]:7373",
		"localhost":                  "https://localhost",
	} {
		got, err := normalizeEndpoint(in)
		if err != nil || got != want {
			t.Errorf("normalizeEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "https://", "https://h:1/path", "https://h:1?x=1", "https://u@h:1", "ht tp://x"} {
		if got, err := normalizeEndpoint(bad); err == nil {
			t.Errorf("normalizeEndpoint(%q) = %q, want error", bad, got)
		}
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("no endpoints accepted")
	}
	if _, err := New([]string{"h:1"}, WithAPIKey(identity.APIKey{})); err == nil {
		t.Error("zero API key accepted")
	}
	if _, err := New([]string{"h:1"}, WithHTTPClient(http.DefaultClient), WithInsecureSkipVerify()); err == nil {
		t.Error("HTTP client combined with TLS option accepted")
	}
	if _, err := New([]string{"h:1"}, WithHTTPClient(nil)); err == nil {
		t.Error("nil HTTP client accepted")
	}
	if _, err := New([]string{"h:1"}, WithEndpointCooldown(0)); err == nil {
		t.Error("zero cool-down accepted")
	}
	if _, err := New([]string{"h:1"}, WithAttemptTimeout(-1)); err == nil {
		t.Error("negative attempt timeout accepted")
	}
	c, err := New([]string{"h:1", "http://g:2"}, WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if eps := c.Endpoints(); len(eps) != 2 || eps[1] != "https://g:2" {
		t.Fatalf("Endpoints() = %v", eps)
	}
}

// TestCertificateAndHTTPClient: WithCertificate and WithHTTPClient both reach
// the server, and the server computes the expected identity.
func TestCertificateAndHTTPClient(t *testing.T) {
	srv := newTestServer(t, cannedHandler)
	k, _ := identity.GenerateAPIKey(nil)
	cert, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New([]string{srv.URL}, WithCertificate(cert), WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := srv.last(t).Identity; got != k.Identity() {
		t.Fatalf("identity %s, want %s", got, k.Identity())
	}

	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	c, err = New([]string{srv.URL}, WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := srv.last(t).Identity; got != k.Identity() {
		t.Fatalf("identity via custom HTTP client %s", got)
	}
}

// TestAPIKeyVectorsOnTheWire: the server derives the spec's identities from
// the certificates the client derives from the spec's API keys.
func TestAPIKeyVectorsOnTheWire(t *testing.T) {
	srv := newTestServer(t, cannedHandler)
	for key, want := range map[string]string{
		"kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs": "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6",
		"kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc": "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
	} {
		c, err := New([]string{srv.URL}, WithAPIKey(mustAPIKey(key)), WithInsecureSkipVerify())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.DescribeSelf(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := srv.last(t).Identity; got != want {
			t.Errorf("%s: server saw %s, want %s", key, got, want)
		}
	}
}

func TestNodeSharesHealth(t *testing.T) {
	bad := newTestServer(t, statusHandler(500))
	good := newTestServer(t, okHandler)
	c := newClient(t, []string{bad.URL, good.URL})
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := c.Node(bad.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !n.lb.endpoints[0].isBenched(time.Now()) {
		t.Fatal("Node does not share the endpoint's health")
	}
	// A single (benched) endpoint is still tried: its answer is returned.
	if _, err := n.Status(context.Background()); !errorsIsCode(err, 500) {
		t.Fatalf("err = %v, want the node's 500", err)
	}
	if good.hits.Load() != 1 {
		t.Fatal("Node used another endpoint")
	}
	if _, err := c.Node("https://x/y"); err == nil {
		t.Fatal("invalid endpoint accepted")
	}
}

func errorsIsCode(err error, code int) bool {
	e, ok := err.(Error)
	return ok && e.Code == code
}

func TestParseMetrics(t *testing.T) {
	raw := []byte(`# HELP kes_http_request_success Number of successful requests
# TYPE kes_http_request_success counter
kes_http_request_success{code="200"} 7
kes_http_request_success{code="204",path="a } b \" c"} 3 1700000000
kes_http_response_time_bucket{le="+Inf"} 10
kes_http_response_time_sum 1.5e-2
kes_system_mem_heap_used 1.048576e+06

kes_http_request_active 0
`)
	m, err := parseMetrics(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"kes_http_request_success":      10,
		"kes_http_response_time_bucket": 10,
		"kes_http_response_time_sum":    0.015,
		"kes_system_mem_heap_used":      1048576,
		"kes_http_request_active":       0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, bad := range []string{"x{a=\"b\" 1", "x", "x 1 2 3", "x abc", "{a=\"b\"} 1"} {
		if _, err := parseMetrics([]byte(bad)); err == nil {
			t.Errorf("parseMetrics(%q) succeeded", bad)
		}
	}
}

func TestStatusDecoding(t *testing.T) {
	var s State
	if err := s.UnmarshalJSON([]byte(`{"uptime":2.5,"keystore_unreachable":true,"keystore_unavailable":true}`)); err != nil {
		t.Fatal(err)
	}
	if s.UpTime != 2500*time.Millisecond || s.KeyStoreLatency != 0 || !s.KeyStoreUnreachable || !s.KeyStoreUnavailable {
		t.Fatalf("%+v", s)
	}
	if err := s.UnmarshalJSON([]byte(`{"uptime":"x"}`)); err == nil {
		t.Fatal("string uptime accepted")
	}
}
