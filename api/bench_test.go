package api

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// trivialBackend answers GenerateKey with fixed bytes, so that the
// benchmark measures the HTTP layer: TLS, HTTP/2, routing, identity,
// authorisation call, body parsing, JSON and metrics.
type trivialBackend struct{ *fakeBackend }

var (
	benchPlaintext  = make([]byte, 32)
	benchCiphertext = make([]byte, 76)
)

func (trivialBackend) GenerateKey(context.Context, string, string, []byte) ([]byte, []byte, error) {
	return append([]byte(nil), benchPlaintext...), benchCiphertext, nil
}

func BenchmarkGenerate(b *testing.B) {
	testKeys(b)
	adminCert, adminID := newCert(b, ed25519Key, false)
	srv, err := New(Config{Backend: trivialBackend{newFakeBackend(adminID)}, AuditOut: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{tlsCert(ed25519Key, adminCert)}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := ts.URL + "/v1/key/generate/minio-default-key"
	const body = `{"context":"eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0="}`

	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
