package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// cannedResponses maps a route prefix to the JSON body the test server sends.
var cannedResponses = map[string]string{
	"/version":                   `{"version":"2025-03-12T09-35-18Z","commit":"abc"}`,
	"/v1/status":                 `{"version":"v1","os":"linux","arch":"amd64","uptime":90,"num_cpu":8,"num_cpu_used":4,"mem_heap_used":1000,"mem_stack_used":200,"keystore_latency":3}`,
	"/v1/api":                    `[{"method":"PUT","path":"/v1/key/create/","max_body":0,"timeout":15}]`,
	"/v1/key/describe/":          `{"name":"my-key","algorithm":"AES256","created_at":"2024-01-02T03:04:05Z","created_by":"` + testIdentity + `"}`,
	"/v1/key/list/":              `{"names":["a","b"],"continue_at":"c"}`,
	"/v1/key/generate/":          `{"plaintext":"AQID","ciphertext":"BAUG"}`,
	"/v1/key/encrypt/":           `{"ciphertext":"BAUG"}`,
	"/v1/key/decrypt/":           `{"plaintext":"AQID"}`,
	"/v1/key/bulk/decrypt/":      `[{"plaintext":"AQ=="},{"plaintext":"Ag=="}]`,
	"/v1/key/hmac/":              `{"hmac":"CQkJ"}`,
	"/v1/policy/describe/":       `{"name":"p","created_at":"2024-01-02T03:04:05Z","created_by":"admin"}`,
	"/v1/policy/read/":           `{"name":"p","allow":{"/v1/key/generate/*":{},"/v1/key/decrypt/*":{}},"deny":{"/v1/key/delete/*":{}}}`,
	"/v1/policy/list/":           `{"names":["p","q"]}`,
	"/v1/identity/describe/":     `{"policy":"p","created_at":"2024-01-02T03:04:05Z","created_by":"admin"}`,
	"/v1/identity/list/":         `{"identities":["x","y"],"continue_at":""}`,
	"/v1/identity/self/describe": `{"identity":"` + testIdentity + `","admin":true,"created_at":"2024-01-02T03:04:05Z"}`,
	"/v1/metrics":                "# HELP kes_http_request_success x\nkes_http_request_success{code=\"200\"} 3\nkes_http_request_success{code=\"204\"} 2\nkes_system_num_cpu 8\n",
}

func cannedHandler(w http.ResponseWriter, r *http.Request) {
	best := ""
	for p := range cannedResponses {
		if strings.HasPrefix(r.URL.Path, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		w.WriteHeader(http.StatusOK) // create, import, delete, ready: empty 200
		return
	}
	if best == "/v1/metrics" {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(cannedResponses[best]))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(cannedResponses[best] + "\n"))
}

// TestRequests checks method, path, body and enclave header of every call
// and the decoding of its response.
func TestRequests(t *testing.T) {
	srv := newTestServer(t, cannedHandler)
	c := newClient(t, []string{srv.URL}, WithEnclave("tenant-1"))
	ctx := context.Background()
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

	tests := []struct {
		name    string
		call    func() (any, error)
		method  string
		path    string // escaped path as sent
		query   string
		body    string // expected JSON body ("" = none)
		enclave bool
		want    any
	}{
		{"version", func() (any, error) { return c.Version(ctx) }, "GET", "/version", "", "", false,
			VersionInfo{Version: "2025-03-12T09-35-18Z", Commit: "abc"}},
		{"ready", func() (any, error) { return nil, c.Ready(ctx) }, "GET", "/v1/ready", "", "", false, nil},
		{"status", func() (any, error) { return c.Status(ctx) }, "GET", "/v1/status", "", "", false,
			State{Version: "v1", OS: "linux", Arch: "amd64", UpTime: 90 * time.Second, CPUs: 8, UsableCPUs: 4,
				HeapAlloc: 1000, StackAlloc: 200, KeyStoreLatency: 3 * time.Millisecond}},
		{"apis", func() (any, error) { return c.APIs(ctx) }, "GET", "/v1/api", "", "", false,
			[]API{{Method: "PUT", Path: "/v1/key/create/", Timeout: 15 * time.Second}}},
		{"metrics", func() (any, error) {
			m, err := c.Metrics(ctx)
			return m.Samples, err
		}, "GET", "/v1/metrics", "", "", false,
			map[string]float64{"kes_http_request_success": 5, "kes_system_num_cpu": 8}},
		{"create", func() (any, error) { return nil, c.CreateKey(ctx, "my-key") }, "POST", "/v1/key/create/my-key", "", "", true, nil},
		{"create escaped", func() (any, error) { return nil, c.CreateKey(ctx, "a/b c") }, "POST", "/v1/key/create/a%2Fb%20c", "", "", true, nil},
		{"import", func() (any, error) { return nil, c.ImportKey(ctx, "k", bytes.Repeat([]byte{1}, 32), "ChaCha20") }, "POST", "/v1/key/import/k", "",
			`{"key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","cipher":"ChaCha20"}`, true, nil},
		{"import default cipher", func() (any, error) { return nil, c.ImportKey(ctx, "k", []byte{1}, "") }, "POST", "/v1/key/import/k", "",
			`{"key":"AQ==","cipher":"AES256"}`, true, nil},
		{"describe", func() (any, error) { return c.DescribeKey(ctx, "my-key") }, "GET", "/v1/key/describe/my-key", "", "", true,
			KeyInfo{Name: "my-key", Algorithm: "AES256", CreatedAt: created, CreatedBy: testIdentity}},
		{"delete", func() (any, error) { return nil, c.DeleteKey(ctx, "my-key") }, "DELETE", "/v1/key/delete/my-key", "", "", true, nil},
		{"list", func() (any, error) {
			names, next, err := c.ListKeys(ctx, "my", "")
			return []any{names, next}, err
		}, "GET", "/v1/key/list/my", "", "", true, []any{[]string{"a", "b"}, "c"}},
		{"list all prefix", func() (any, error) {
			names, next, err := c.ListKeys(ctx, "", "")
			return []any{names, next}, err
		}, "GET", "/v1/key/list/", "", "", true, []any{[]string{"a", "b"}, "c"}},
		{"list continue", func() (any, error) {
			_, _, err := c.ListKeys(ctx, "m", "m-1")
			return nil, err
		}, "GET", "/v1/key/list/m", "continue=m-1", "", true, nil},
		{"generate", func() (any, error) { return c.GenerateKey(ctx, "my-key", []byte("{}")) }, "POST", "/v1/key/generate/my-key", "",
			`{"context":"e30="}`, true, DEK{Plaintext: []byte{1, 2, 3}, Ciphertext: []byte{4, 5, 6}}},
		{"generate no context", func() (any, error) { return c.GenerateKey(ctx, "my-key", nil) }, "POST", "/v1/key/generate/my-key", "",
			`{}`, true, DEK{Plaintext: []byte{1, 2, 3}, Ciphertext: []byte{4, 5, 6}}},
		{"encrypt", func() (any, error) { return c.Encrypt(ctx, "k", []byte("hi"), []byte("c")) }, "POST", "/v1/key/encrypt/k", "",
			`{"plaintext":"aGk=","context":"Yw=="}`, true, []byte{4, 5, 6}},
		{"decrypt", func() (any, error) { return c.Decrypt(ctx, "k", []byte{4, 5, 6}, []byte("c")) }, "POST", "/v1/key/decrypt/k", "",
			`{"ciphertext":"BAUG","context":"Yw=="}`, true, []byte{1, 2, 3}},
		{"bulk decrypt", func() (any, error) {
			return c.BulkDecrypt(ctx, "k", []DecryptItem{{Ciphertext: []byte{7}, Context: []byte("c")}, {Ciphertext: []byte{8}}})
		}, "POST", "/v1/key/bulk/decrypt/k", "", `[{"ciphertext":"Bw==","context":"Yw=="},{"ciphertext":"CA=="}]`, true, [][]byte{{1}, {2}}},
		{"hmac", func() (any, error) { return c.HMAC(ctx, "k", []byte("msg")) }, "PUT", "/v1/key/hmac/k", "",
			`{"message":"bXNn"}`, true, []byte{9, 9, 9}},
		{"describe policy", func() (any, error) { return c.DescribePolicy(ctx, "p") }, "GET", "/v1/policy/describe/p", "", "", true,
			PolicyInfo{Name: "p", CreatedAt: created, CreatedBy: "admin"}},
		{"read policy", func() (any, error) { return c.ReadPolicy(ctx, "p") }, "GET", "/v1/policy/read/p", "", "", true,
			Policy{Name: "p", Allow: Patterns{"/v1/key/decrypt/*", "/v1/key/generate/*"}, Deny: Patterns{"/v1/key/delete/*"}}},
		{"list policies", func() (any, error) { return c.ListAllPolicies(ctx, "") }, "GET", "/v1/policy/list/", "", "", true, []string{"p", "q"}},
		{"describe identity", func() (any, error) { return c.DescribeIdentity(ctx, "abc") }, "GET", "/v1/identity/describe/abc", "", "", true,
			IdentityInfo{Identity: "abc", Policy: "p", CreatedAt: created, CreatedBy: "admin"}},
		{"list identities", func() (any, error) { return c.ListAllIdentities(ctx, "x") }, "GET", "/v1/identity/list/x", "", "", true, []string{"x", "y"}},
		{"describe self", func() (any, error) {
			info, p, err := c.DescribeSelf(ctx)
			return []any{info, p}, err
		}, "GET", "/v1/identity/self/describe", "", "", true,
			[]any{IdentityInfo{Identity: testIdentity, IsAdmin: true, CreatedAt: created}, (*Policy)(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			s := srv.last(t)
			if s.Method != tc.method || s.RawPath != tc.path || s.Query != tc.query {
				t.Errorf("sent %s %s?%s, want %s %s?%s", s.Method, s.RawPath, s.Query, tc.method, tc.path, tc.query)
			}
			if tc.body == "" && len(s.Body) != 0 {
				t.Errorf("sent body %s, want none", s.Body)
			}
			if tc.body != "" && !jsonEqual(t, s.Body, []byte(tc.body)) {
				t.Errorf("sent body %s, want %s", s.Body, tc.body)
			}
			if tc.enclave != s.HasEnclave || (tc.enclave && s.Enclave != "tenant-1") {
				t.Errorf("enclave header present=%v value=%q, want present=%v", s.HasEnclave, s.Enclave, tc.enclave)
			}
			if s.Identity != testIdentity {
				t.Errorf("server saw identity %q, want the API key's %s", s.Identity, testIdentity)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestEnclaveHeader checks that no Kes-Enclave header is sent without an
// enclave, and that Enclave derives a client that sends one.
func TestEnclaveHeader(t *testing.T) {
	srv := newTestServer(t, cannedHandler)
	c := newClient(t, []string{srv.URL})
	ctx := context.Background()
	if _, err := c.GenerateKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if s := srv.last(t); s.HasEnclave {
		t.Fatalf("header sent without enclave: %q", s.Enclave)
	}
	e := c.Enclave("acc")
	if _, err := e.DescribeKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if s := srv.last(t); s.Enclave != "acc" {
		t.Fatalf("enclave header = %q, want acc", s.Enclave)
	}
	if _, err := e.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if s := srv.last(t); s.HasEnclave {
		t.Fatal("status must not carry the enclave header")
	}
	if _, err := c.DescribeKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if s := srv.last(t); s.HasEnclave {
		t.Fatal("Enclave changed the parent client")
	}
}

func TestDescribeSelfShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		info       IdentityInfo
		policy     *Policy
	}{
		{"current", `{"identity":"i","created_at":"0001-01-01T00:00:00Z","created_by":"a","policy":{"name":"p","allow":{"/v1/key/*":{}},"deny":{}}}`,
			IdentityInfo{Identity: "i", Policy: "p", CreatedBy: "a"}, &Policy{Name: "p", Allow: Patterns{"/v1/key/*"}, Deny: Patterns{}}},
		{"sdk", `{"identity":"i","policy":"p","allow":{"/a":{}},"deny":{"/b":{}}}`,
			IdentityInfo{Identity: "i", Policy: "p"}, &Policy{Name: "p", Allow: Patterns{"/a"}, Deny: Patterns{"/b"}}},
		{"2023", `{"identity":"i","policy_name":"p","policy":{"allow":["/z","/a"]}}`,
			IdentityInfo{Identity: "i", Policy: "p"}, &Policy{Name: "p", Allow: Patterns{"/a", "/z"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tc.body))
			})
			info, p, err := newClient(t, []string{srv.URL}).DescribeSelf(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(info, tc.info) || !reflect.DeepEqual(p, tc.policy) {
				t.Fatalf("got %#v %#v, want %#v %#v", info, p, tc.info, tc.policy)
			}
		})
	}
}

func TestBulkDecryptCountMismatch(t *testing.T) {
	srv := newTestServer(t, cannedHandler) // answers two plaintexts
	_, err := newClient(t, []string{srv.URL}).BulkDecrypt(context.Background(), "k", []DecryptItem{{Ciphertext: []byte{1}}})
	if err == nil || !strings.Contains(err.Error(), "2 items, want 1") {
		t.Fatalf("err = %v", err)
	}
}
