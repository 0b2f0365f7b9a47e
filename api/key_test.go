package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/internal/kes"
)

// keyCalls returns one request per key route for key name, with valid
// bodies, as method, path, body triples.
func keyCalls(name string) [][3]string {
	ct := base64.StdEncoding.EncodeToString(make([]byte, 40))
	return [][3]string{
		{http.MethodPut, "/v1/key/create/" + name, ""},
		{http.MethodPost, "/v1/key/import/" + name, `{"key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","cipher":"AES256"}`},
		{http.MethodGet, "/v1/key/describe/" + name, ""},
		{http.MethodDelete, "/v1/key/delete/" + name, ""},
		{http.MethodPost, "/v1/key/generate/" + name, `{"context":"YQ=="}`},
		{http.MethodPost, "/v1/key/encrypt/" + name, `{"plaintext":"YQ=="}`},
		{http.MethodPost, "/v1/key/decrypt/" + name, `{"ciphertext":"` + ct + `"}`},
		{http.MethodPut, "/v1/key/hmac/" + name, `{"message":"YQ=="}`},
		{http.MethodPost, "/v1/key/bulk/decrypt/" + name, `[{"ciphertext":"` + ct + `"}]`},
	}
}

// TestBackendErrorsPassThrough checks that every kes.Error a backend
// returns reaches the client with its exact status and message, and that
// other errors become a logged 500 with the route's generic message.
func TestBackendErrorsPassThrough(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"e-notfound", kes.ErrKeyNotFound, 404, "key does not exist"},
		{"e-exists", kes.ErrKeyExists, 400, "key already exists"},
		{"e-decrypt", kes.ErrDecrypt, 400, "decryption failed: ciphertext is not authentic"},
		{"e-notallowed", kes.ErrNotAllowed, 403, "not authorized: insufficient permissions"},
		{"e-enclave", kes.ErrEnclaveNotFound, 404, "enclave does not exist"},
		{"e-partial", kes.ErrPartialWrite, 503, "change committed but not replicated"},
		{"e-wrapped", fmt.Errorf("enclave: load key: %w", kes.ErrKeyNotFound), 404, "key does not exist"},
		{"e-406", kes.NewError(406, "algorithm 'X' is not supported"), 406, "algorithm 'X' is not supported"},
		{"e-409", kes.NewError(409, "key does not support HMAC"), 409, "key does not support HMAC"},
		{"e-501", kes.NewError(501, "not implemented"), 501, "not implemented"},
		{"e-quote", kes.NewError(400, `a "quoted" <message>`), 400, `a "quoted" <message>`},
	} {
		e.backend.force(tc.name, tc.err)
		for _, c := range keyCalls(tc.name) {
			expectError(t, e.admin.do(c[0], c[1], strings.NewReader(c[2])), tc.code, tc.msg)
		}
		expectError(t, e.admin.get("/v1/key/list/"+tc.name), tc.code, tc.msg)
		expectError(t, e.admin.get("/v1/policy/read/"+tc.name), tc.code, tc.msg)
		expectError(t, e.admin.get("/v1/policy/describe/"+tc.name), tc.code, tc.msg)
		expectError(t, e.admin.get("/v1/identity/describe/"+tc.name), tc.code, tc.msg)
	}

	const secret = "disk on fire at sector 7"
	e.backend.force("e-internal", errors.New(secret))
	generic := []string{"failed to create key", "failed to import key", "failed to read key", "failed to delete key",
		"failed to generate encryption key", "failed to encrypt plaintext", "failed to decrypt ciphertext",
		"failed to compute HMAC", "failed to decrypt ciphertext"}
	for i, c := range keyCalls("e-internal") {
		r := e.admin.do(c[0], c[1], strings.NewReader(c[2]))
		expectError(t, r, http.StatusInternalServerError, generic[i])
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("internal error text leaked to the client: %s", r.body)
		}
	}
	expectError(t, e.admin.get("/v1/key/list/e-internal"), 500, "failed to list keys")
	expectError(t, e.admin.get("/v1/policy/list/e-internal"), 500, "failed to list policies")
	expectError(t, e.admin.get("/v1/identity/list/e-internal"), 500, "failed to list identities")
	if logs := e.logs.String(); strings.Count(logs, secret) < len(generic)+3 || !strings.Contains(logs, "[ERROR]") || !strings.Contains(logs, "path=/v1/key/generate/e-internal") {
		t.Fatalf("internal errors not logged in full:\n%s", logs)
	}

	// Errors the fake produces itself.
	expectEmpty(t, e.admin.post("/v1/key/create/k", ""))
	expectError(t, e.admin.post("/v1/key/create/k", ""), 400, "key already exists")
	expectError(t, e.admin.post("/v1/key/decrypt/k", `{"ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`), 400, "decryption failed: ciphertext is not authentic")
	expectError(t, e.admin.post("/v1/key/import/j", `{"key":"AAAA"}`), 406, "algorithm '' is not supported")
	expectError(t, e.admin.post("/v1/key/import/j", `{"key":"AAAA","cipher":"AES256"}`), 406, "invalid key size for 'AES256'")
	expectEmpty(t, e.admin.post("/v1/key/import/legacy-1", `{"key":"`+base64.StdEncoding.EncodeToString(make([]byte, 32))+`","cipher":"ChaCha20"}`))
	expectError(t, e.admin.do(http.MethodPut, "/v1/key/hmac/legacy-1", strings.NewReader(`{"message":"YQ=="}`)), 409, "key does not support HMAC")
	expectError(t, e.admin.get("/v1/policy/read/nope"), 404, "policy does not exist")
	expectError(t, e.admin.get("/v1/identity/describe/nope"), 404, "identity does not exist")
}

func TestNameValidation(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 81)
	invalid := []struct{ raw, decoded string }{
		{"", ""},
		{"my.key", "my.key"},
		{"-a", "-a"},
		{"a-", "a-"},
		{"_", "_"},
		{long, long},
		{"%C3%A9", "é"},
		{"a%20b", "a b"},
		{"a%2Fb", "a/b"},
		{"a*", "a*"},
		{"a/b", "a/b"},
	}
	for _, n := range invalid {
		for _, c := range keyCalls(n.raw) {
			expectError(t, e.admin.do(c[0], c[1], strings.NewReader(c[2])), 400, fmt.Sprintf("key name '%s' is empty, too long or contains invalid characters", n.decoded))
		}
		expectError(t, e.admin.get("/v1/policy/describe/"+n.raw), 400, fmt.Sprintf("policy name '%s' is empty, too long or contains invalid characters", n.decoded))
		expectError(t, e.admin.get("/v1/policy/read/"+n.raw), 400, fmt.Sprintf("policy name '%s' is empty, too long or contains invalid characters", n.decoded))
		expectError(t, e.admin.get("/v1/identity/describe/"+n.raw), 400, fmt.Sprintf("identity '%s' is empty, too long or contains invalid characters", n.decoded))
	}
	// Bare paths are the routes with an empty name.
	expectError(t, e.admin.post("/v1/key/create", ""), 400, "key name '' is empty, too long or contains invalid characters")

	for _, valid := range []string{"my-key", "0", "_-___---_", "_0", strings.Repeat("Z", 80)} {
		expectEmpty(t, e.admin.post("/v1/key/create/"+valid, ""))
		expectOK(t, e.admin.get("/v1/key/describe/"+valid))
	}

	for _, p := range []struct{ raw, decoded string }{
		{"*-*", "*-*"}, {"a*b", "a*b"}, {"**", "**"}, {"my.key", "my.key"}, {"%2A%2A", "**"}, {strings.Repeat("a", 81), strings.Repeat("a", 81)}, {"a%2Fb", "a/b"},
	} {
		msg := fmt.Sprintf("listing pattern '%s' is empty, too long or is invalid", p.decoded)
		expectError(t, e.admin.get("/v1/key/list/"+p.raw), 400, msg)
		expectError(t, e.admin.get("/v1/policy/list/"+p.raw), 400, msg)
		expectError(t, e.admin.get("/v1/identity/list/"+p.raw), 400, msg)
	}
}

func TestListKeys(t *testing.T) {
	e := newEnv(t)
	for _, k := range []string{"app-1", "app-2", "app-3", "other"} {
		expectEmpty(t, e.admin.post("/v1/key/create/"+k, ""))
	}
	list := func(path string) (listResponse, string) {
		t.Helper()
		var l listResponse
		r := e.admin.get(path)
		expectJSON(t, r, &l)
		return l, string(r.body)
	}
	for path, want := range map[string]string{
		"/v1/key/list":        "app-1,app-2,app-3,other", // served, not redirected
		"/v1/key/list/":       "app-1,app-2,app-3,other",
		"/v1/key/list/*":      "app-1,app-2,app-3,other",
		"/v1/key/list/%2A":    "app-1,app-2,app-3,other",
		"/v1/key/list/app*":   "app-1,app-2,app-3",
		"/v1/key/list/app%2A": "app-1,app-2,app-3",
		"/v1/key/list/app":    "app-1,app-2,app-3",
		"/v1/key/list/app-2":  "app-2",
	} {
		l, _ := list(path)
		if got := strings.Join(l.Names, ","); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if _, raw := list("/v1/key/list/zzz"); raw != "{\"names\":[]}\n" {
		t.Errorf("empty listing = %q", raw)
	}

	// Pagination: the continuation reaches the backend from either
	// parameter name, and continue_at is omitted on the last page.
	e.backend.mu.Lock()
	e.backend.pageSize = 2
	e.backend.mu.Unlock()
	l, _ := list("/v1/key/list/app*")
	if strings.Join(l.Names, ",") != "app-1,app-2" || l.ContinueAt != "app-2" {
		t.Fatalf("page 1 = %+v", l)
	}
	for _, param := range []string{"continue", "continue_at"} {
		l, raw := list("/v1/key/list/app*?" + param + "=" + l.ContinueAt)
		if strings.Join(l.Names, ",") != "app-3" || strings.Contains(raw, "continue_at") {
			t.Fatalf("page 2 via %s = %s", param, raw)
		}
		e.backend.mu.Lock()
		prefix, cont := e.backend.lastPrefix, e.backend.lastContinue
		e.backend.mu.Unlock()
		if prefix != "app" || cont != "app-2" {
			t.Fatalf("backend saw prefix %q continue %q", prefix, cont)
		}
	}
}

func TestBulkDecrypt(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.post("/v1/key/create/k", ""))
	var items []string
	var want []string
	for i := range 3 {
		ctx := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "ctx-%d", i))
		pt := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "plaintext-%d", i))
		var enc struct{ Ciphertext []byte }
		expectJSON(t, e.admin.post("/v1/key/encrypt/k", `{"plaintext":"`+pt+`","context":"`+ctx+`"}`), &enc)
		items = append(items, `{"ciphertext":"`+base64.StdEncoding.EncodeToString(enc.Ciphertext)+`","context":"`+ctx+`"}`)
		want = append(want, pt)
	}
	var got []struct{ Plaintext []byte }
	expectJSON(t, e.admin.post("/v1/key/bulk/decrypt/k", "["+strings.Join(items, ",")+"]"), &got)
	if len(got) != 3 {
		t.Fatalf("%d plaintexts", len(got))
	}
	for i := range got {
		if base64.StdEncoding.EncodeToString(got[i].Plaintext) != want[i] {
			t.Fatalf("plaintext %d = %q", i, got[i].Plaintext)
		}
	}
	var empty []any
	expectJSON(t, e.admin.post("/v1/key/bulk/decrypt/k", "[]"), &empty)
	if len(empty) != 0 {
		t.Fatalf("empty bulk = %v", empty)
	}
	// One bad ciphertext fails the whole call.
	bad := append([]string{items[0], `{"ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`}, items[1:]...)
	expectError(t, e.admin.post("/v1/key/bulk/decrypt/k", "["+strings.Join(bad, ",")+"]"), 400, "decryption failed: ciphertext is not authentic")
	expectError(t, e.admin.post("/v1/key/bulk/decrypt/k", "["+strings.Repeat(items[0]+",", 1000)+items[0]+"]"), 400, "too many ciphertexts")
	expectOK(t, e.admin.post("/v1/key/bulk/decrypt/k", "["+strings.Repeat(items[0]+",", 999)+items[0]+"]"))
	expectError(t, e.admin.post("/v1/key/bulk/decrypt/k", `{"ciphertext":"AAAA"}`), 400, "invalid request body")
}

func TestEnclaveSelection(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.post("/v1/key/create/tk", "", "Kes-Enclave", "tenant-1"))
	if enc, id := e.backend.seen(); enc != "tenant-1" || id != e.admin.identity {
		t.Fatalf("backend saw enclave %q identity %q", enc, id)
	}
	expectOK(t, e.admin.get("/v1/key/describe/tk?enclave=tenant-1"))
	if enc, _ := e.backend.seen(); enc != "tenant-1" {
		t.Fatalf("query parameter: backend saw enclave %q", enc)
	}
	expectError(t, e.admin.get("/v1/key/describe/tk"), 404, "key does not exist")
	if enc, _ := e.backend.seen(); enc != "default" {
		t.Fatalf("no selection: backend saw enclave %q", enc)
	}
	// The header wins over the query parameter.
	expectOK(t, e.admin.get("/v1/key/describe/tk?enclave=default", "Kes-Enclave", "tenant-1"))
	expectError(t, e.admin.get("/v1/key/describe/tk", "Kes-Enclave", "nope"), 404, "enclave does not exist")
	for _, bad := range []string{"bad.name", "-x", strings.Repeat("e", 81)} {
		msg := fmt.Sprintf("enclave name '%s' is empty, too long or contains invalid characters", bad)
		expectError(t, e.admin.get("/v1/key/describe/tk", "Kes-Enclave", bad), 400, msg)
		expectError(t, e.admin.get("/v1/key/list/?enclave="+bad), 400, msg)
	}
	// /version needs no enclave and ignores a bad one.
	expectOK(t, e.admin.get("/version", "Kes-Enclave", "bad.name"))
}
