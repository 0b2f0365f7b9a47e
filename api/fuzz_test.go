package api

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// bodyRoutes are the routes that decode a request body.
var bodyRoutes = []struct{ method, path string }{
	{http.MethodPut, "/v1/key/import/k2"},
	{http.MethodPut, "/v1/key/generate/k"},
	{http.MethodPut, "/v1/key/encrypt/k"},
	{http.MethodPut, "/v1/key/decrypt/k"},
	{http.MethodPost, "/v1/key/bulk/decrypt/k"},
	{http.MethodPut, "/v1/key/hmac/k"},
}

// FuzzRequestBody sends arbitrary bodies to every body route of a Server
// (fake backend, admin identity) and checks that every answer is a
// well-formed KES response: 200, or a 4xx/5xx with a JSON {"message"}.
func FuzzRequestBody(f *testing.F) {
	testKeys(f)
	adminCert, adminID := newCert(f, ed25519Key, false)
	srv, err := New(Config{Backend: newFakeBackend(adminID), AuditOut: io.Discard})
	if err != nil {
		f.Fatal(err)
	}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{adminCert}}
	serve := func(method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.TLS = state
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve(http.MethodPost, "/v1/key/create/k", nil); rec.Code != http.StatusOK {
		f.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	rec := serve(http.MethodPut, "/v1/key/encrypt/k", []byte(`{"plaintext":"aGVsbG8=","context":"Y3R4"}`))
	var enc struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &enc); err != nil {
		f.Fatalf("encrypt: %v %s", err, rec.Body)
	}
	ct, _ := json.Marshal(enc.Ciphertext)
	seeds := []string{
		`{}`, ``, `null`, `[]`, `{"context":"Y3R4"}`, `{"plaintext":"aGVsbG8="}`,
		`{"key":"` + strings.Repeat("A", 43) + `=","cipher":"AES256"}`,
		`{"ciphertext":` + string(ct) + `,"context":"Y3R4"}`,
		`[{"ciphertext":` + string(ct) + `,"context":"Y3R4"}]`,
		`{"message":"aGk="}`, `{"plaintext":"!!"}`, `{"context":1}`, `{"ciphertext":"` + strings.Repeat("/", 100) + `"}`,
	}
	for i := range bodyRoutes {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := bodyRoutes[int(route)%len(bodyRoutes)]
		rec := serve(r.method, r.path, body)
		if rec.Code == http.StatusOK {
			return
		}
		if rec.Code < 400 || rec.Code > 599 {
			t.Fatalf("%s %s %q: status %d", r.method, r.path, body, rec.Code)
		}
		var msg struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &msg); err != nil || msg.Message == nil {
			t.Fatalf("%s %s %q: %d with body %q", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500 %s", r.method, r.path, body, rec.Body)
		}
	})
}
