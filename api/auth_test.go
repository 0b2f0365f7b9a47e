package api

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// minioPolicy is the policy of the MinIO/KES guide, plus deny rules.
var minioPolicy = []string{
	"/v1/key/create/minio-*",
	"/v1/key/generate/*",
	"/v1/key/decrypt/*",
	"/v1/key/bulk/decrypt",
	"/v1/key/list",
	"/v1/status",
	"/v1/metrics",
	"/v1/log/audit",
	"/v1/log/error",
}

func TestPolicyEnforcement(t *testing.T) {
	e := newEnv(t)
	e.backend.setPolicy("default", "minio", minioPolicy, []string{"/v1/key/generate/secret-*", "/v1/key/bulk/decrypt/secret-*"}, e.user.identity)
	for _, k := range []string{"minio-1", "secret-1", "other"} {
		expectEmpty(t, e.admin.post("/v1/key/create/"+k, ""))
	}
	var gen struct{ Ciphertext []byte }
	expectJSON(t, e.admin.post("/v1/key/generate/minio-1", ""), &gen)
	bulk := `[{"ciphertext":"` + b64(gen.Ciphertext) + `"}]`

	allowed := []struct{ method, path, body string }{
		{"POST", "/v1/key/create/minio-2", ""},
		{"PUT", "/v1/key/generate/minio-1", ""},
		{"POST", "/v1/key/generate/other", ""},
		{"POST", "/v1/key/decrypt/minio-1", `{"ciphertext":"` + b64(gen.Ciphertext) + `"}`},
		{"POST", "/v1/key/bulk/decrypt/minio-1", bulk}, // bare "/v1/key/bulk/decrypt" entry
		{"GET", "/v1/key/list", ""},                    // bare request, bare entry
		{"GET", "/v1/key/list/", ""},                   // bare entry grants the route
		{"GET", "/v1/key/list/%2A", ""},
		{"GET", "/v1/key/list/minio*", ""},
		{"GET", "/v1/status", ""},
		{"GET", "/v1/metrics", ""},
		{"GET", "/v1/identity/self/describe", ""}, // identify-only
		{"GET", "/version", ""},                   // no auth
	}
	for _, c := range allowed {
		expectOK(t, e.user.do(c.method, c.path, strings.NewReader(c.body)))
	}
	denied := []struct{ method, path, body string }{
		{"POST", "/v1/key/create/other-2", ""},
		{"POST", "/v1/key/generate/secret-1", ""},         // deny wins
		{"POST", "/v1/key/bulk/decrypt/secret-1", bulk},   // deny wins over the bare entry
		{"POST", "/v1/key/import/minio-3", `{"key":"x"}`}, // denied before the body is parsed
		{"POST", "/v1/key/encrypt/minio-1", `{}`},
		{"PUT", "/v1/key/hmac/minio-1", `{}`},
		{"GET", "/v1/key/describe/minio-1", ""},
		{"DELETE", "/v1/key/delete/minio-1", ""},
		{"GET", "/v1/key/describe/..", ""}, // authorisation precedes name validation
		{"GET", "/v1/ready", ""},
		{"GET", "/v1/api", ""},
		{"GET", "/v1/policy/describe/minio", ""},
		{"GET", "/v1/policy/read/minio", ""},
		{"GET", "/v1/policy/list/", ""},
		{"GET", "/v1/identity/describe/" + e.user.identity, ""},
		{"GET", "/v1/identity/list/", ""},
	}
	for _, c := range denied {
		expectError(t, e.user.do(c.method, c.path, strings.NewReader(c.body)), http.StatusForbidden, "not authorized: insufficient permissions")
	}
	// The policy lives in the default enclave only.
	expectError(t, e.user.post("/v1/key/generate/minio-1", "", "Kes-Enclave", "tenant-1"), 403, "not authorized: insufficient permissions")
	// An identity without a policy may do nothing but describe itself.
	expectError(t, e.stranger.get("/v1/status"), 403, "not authorized: insufficient permissions")
	expectError(t, e.stranger.get("/v1/key/list"), 403, "not authorized: insufficient permissions")
	expectError(t, e.stranger.get("/v1/identity/self/describe"), 404, "identity does not exist")
	expectOK(t, e.stranger.get("/version"))
}

// TestBarePathRules pins the two extra spellings authorize accepts, and
// that they stay narrow.
func TestBarePathRules(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.post("/v1/key/create/a1", ""))
	for _, tc := range []struct {
		allow, deny []string
		path        string
		ok          bool
	}{
		// A bare request is allowed by either spelling.
		{[]string{"/v1/key/list/"}, nil, "/v1/key/list", true},
		{[]string{"/v1/key/list/*"}, nil, "/v1/key/list", true},
		{[]string{"/v1/key/list"}, nil, "/v1/key/list", true},
		{[]string{"/v1/key/list/"}, nil, "/v1/key/list/a*", false},
		// An exact bare entry grants every resource of its route...
		{[]string{"/v1/key/list"}, nil, "/v1/key/list/a*", true},
		{[]string{"/v1/key/describe"}, nil, "/v1/key/describe/a1", true},
		// ...but not other routes, not as a partial prefix, not via globs...
		{[]string{"/v1/key/list"}, nil, "/v1/key/describe/a1", false},
		{[]string{"/v1/key/desc"}, nil, "/v1/key/describe/a1", false},
		{[]string{"/v1/key/describ?"}, nil, "/v1/key/describe/a1", false},
		{[]string{"/v1/key"}, nil, "/v1/key/describe/a1", false},
		// ...not for exact routes (nothing to widen)...
		{[]string{"/v1/identity/self"}, nil, "/v1/status", false},
		// ...and every matching deny still rejects.
		{[]string{"/v1/key/describe"}, []string{"/v1/key/describe/a*"}, "/v1/key/describe/a1", false},
		{[]string{"/v1/key/describe"}, []string{"/v1/key/describe"}, "/v1/key/describe/a1", false},
		{[]string{"/v1/key/list"}, []string{"/v1/key/list/"}, "/v1/key/list/", false},
		{[]string{"/v1/key/list/*"}, []string{"/v1/key/list/"}, "/v1/key/list/a*", true},
	} {
		e.backend.setPolicy("default", "p", tc.allow, tc.deny, e.rsaUser.identity)
		r := e.rsaUser.get(tc.path)
		if got := r.StatusCode == http.StatusOK; got != tc.ok {
			t.Errorf("allow %v deny %v: GET %s → %d %s, want ok=%v", tc.allow, tc.deny, tc.path, r.StatusCode, r.body, tc.ok)
		}
		if !tc.ok {
			expectError(t, r, 403, "not authorized: insufficient permissions")
		}
	}
}

func TestIdentityErrors(t *testing.T) {
	e := newEnv(t)
	testKeys(t)
	leaf, _ := newCert(t, ecdsaKey, false)
	other, _ := newCert(t, ecdsaKey2, false)
	ca, _ := newCert(t, ecdsaKey2, true)
	e.backend.setPolicy("default", "p", []string{"/v1/status"}, nil, e.user.identity, e.rsaUser.identity)

	// A CA certificate next to the leaf is ignored: the identity is the leaf's.
	withCA := e.newClient(e.user.identity, tlsCert(ecdsaKey, leaf, ca))
	expectOK(t, withCA.get("/v1/status"))
	if _, id := e.backend.seen(); id != e.user.identity {
		t.Fatalf("identity with CA = %q, want %q", id, e.user.identity)
	}
	// Two non-CA certificates are rejected.
	two := e.newClient("", tlsCert(ecdsaKey, leaf, other))
	expectError(t, two.get("/v1/status"), 400, "tls: received more than one client certificate")
	expectError(t, two.get("/v1/identity/self/describe"), 400, "tls: received more than one client certificate")
	expectOK(t, two.get("/version"))

	// The chain attack: a CA-marked certificate whose key the client holds
	// (the stranger's), followed by a certificate it merely copied (the
	// admin's, the user's). The handshake proves only the first
	// certificate's key, so the caller is never named after the copy; a
	// lone CA certificate is refused as KES refuses it.
	adminCopy, adminID := newCert(t, ed25519Key, false)
	if adminID != e.admin.identity {
		t.Fatal("admin certificate copy has another identity")
	}
	for name, chain := range map[string]tls.Certificate{
		"CA then admin": tlsCert(ecdsaKey2, ca, adminCopy),
		"CA then user":  tlsCert(ecdsaKey2, ca, leaf),
		"lone CA":       tlsCert(ecdsaKey2, ca),
	} {
		t.Run(name, func(t *testing.T) {
			forged := e.newClient("", chain)
			expectError(t, forged.post("/v1/key/create/stolen", ""), 400, "tls: client certificate is required")
			expectError(t, forged.get("/v1/policy/list/"), 400, "tls: client certificate is required")
			expectError(t, forged.get("/v1/status"), 400, "tls: client certificate is required")
			expectError(t, forged.get("/v1/identity/self/describe"), 400, "tls: client certificate is required")
			expectOK(t, forged.get("/version"))
			expectError(t, e.admin.get("/v1/key/describe/stolen"), 404, "key does not exist")
		})
	}

	// Every key type identifies as SHA-256 of its SubjectPublicKeyInfo.
	for _, c := range []*client{e.admin, e.user, e.rsaUser} {
		var self struct {
			Identity string `json:"identity"`
		}
		expectJSON(t, c.get("/v1/identity/self/describe"), &self)
		if self.Identity != c.identity {
			t.Fatalf("self identity %q, want %q", self.Identity, c.identity)
		}
	}

	// Without TLS there is no identity at all.
	plain := httptest.NewServer(e.srv)
	defer plain.Close()
	pc := &client{t: t, c: plain.Client(), base: plain.URL}
	expectError(t, pc.get("/v1/status"), 400, "insecure connection: TLS is required")
	expectError(t, pc.get("/v1/identity/self/describe"), 400, "insecure connection: TLS is required")
	expectOK(t, pc.get("/version"))
}

// TestSkipAuth: skip_auth routes identify only, so clients without a
// certificate reach them (with the TLS mode KES uses then), while other
// routes still need one.
func TestSkipAuth(t *testing.T) {
	e := newEnv(t, withClientAuth(tls.RequestClientCert), withRoutes(map[string]RouteConfig{
		"/v1/status":    {SkipAuth: true},
		"/v1/ready":     {SkipAuth: true},
		"/v1/key/list/": {SkipAuth: true},
	}))
	anon := e.newClient("")
	expectOK(t, anon.get("/v1/status"))
	expectEmpty(t, anon.get("/v1/ready"))
	expectOK(t, anon.get("/v1/key/list"))
	expectError(t, anon.get("/v1/api"), 400, "tls: client certificate is required")
	expectError(t, anon.get("/v1/key/describe/k"), 400, "tls: client certificate is required")
	expectError(t, anon.get("/v1/identity/self/describe"), 400, "tls: client certificate is required")
	// A stranger with a certificate but no policy passes skip_auth routes.
	expectOK(t, e.stranger.get("/v1/status"))
	expectError(t, e.stranger.get("/v1/api"), 403, "not authorized: insufficient permissions")
	for _, a := range e.srv.APIs() {
		if want := a.Path == "/v1/status" || a.Path == "/v1/ready" || a.Path == "/v1/key/list/" || a.Path == "/version" || a.Path == "/v1/identity/self/describe"; a.SkipAuth != want {
			t.Errorf("%s: SkipAuth %v", a.Path, a.SkipAuth)
		}
	}
}

func TestPolicyAndIdentityHandlers(t *testing.T) {
	e := newEnv(t)
	e.backend.setPolicy("default", "minio", []string{"/v1/key/generate/*", "/v1/status"}, []string{"/v1/key/generate/x*"}, e.user.identity)
	e.backend.setPolicy("default", "empty", nil, nil, e.rsaUser.identity)
	e.backend.setPolicy("default", "other", []string{"/v1/api"}, nil)
	created := e.backend.started.Format(time.RFC3339)

	expectJSONBody(t, e.admin.get("/v1/policy/describe/minio"), `{"name":"minio","created_at":"`+created+`","created_by":"`+e.admin.identity+`"}`)
	expectJSONBody(t, e.admin.get("/v1/policy/read/minio"), `{"name":"minio","allow":{"/v1/key/generate/*":{},"/v1/status":{}},"deny":{"/v1/key/generate/x*":{}},"created_at":"`+created+`","created_by":"`+e.admin.identity+`"}`)
	expectJSONBody(t, e.admin.get("/v1/policy/read/empty"), `{"name":"empty","created_at":"`+created+`","created_by":"`+e.admin.identity+`"}`)
	expectJSONBody(t, e.admin.get("/v1/policy/list/"), `{"names":["empty","minio","other"]}`)
	expectJSONBody(t, e.admin.get("/v1/policy/list"), `{"names":["empty","minio","other"]}`)
	expectJSONBody(t, e.admin.get("/v1/policy/list/m*"), `{"names":["minio"]}`)
	expectJSONBody(t, e.admin.get("/v1/policy/list/%2A"), `{"names":["empty","minio","other"]}`)
	expectJSONBody(t, e.admin.get("/v1/policy/list/zz"), `{"names":[]}`)

	expectJSONBody(t, e.admin.get("/v1/identity/describe/"+e.admin.identity), `{"admin":true,"created_at":"`+created+`"}`)
	expectJSONBody(t, e.admin.get("/v1/identity/describe/"+e.user.identity), `{"policy":"minio","created_at":"`+created+`","created_by":"`+e.admin.identity+`"}`)
	var ids struct{ Identities []string }
	expectJSON(t, e.admin.get("/v1/identity/list"), &ids)
	if len(ids.Identities) != 3 || !strings.Contains(strings.Join(ids.Identities, ","), e.admin.identity) {
		t.Fatalf("identities = %v", ids.Identities)
	}
	expectJSON(t, e.admin.get("/v1/identity/list/"+e.user.identity[:10]+"*"), &ids)
	if strings.Join(ids.Identities, ",") != e.user.identity {
		t.Fatalf("identities by prefix = %v", ids.Identities)
	}
	e.backend.mu.Lock()
	prefix := e.backend.lastPrefix
	e.backend.mu.Unlock()
	if prefix != e.user.identity[:10] {
		t.Fatalf("backend prefix %q", prefix)
	}

	// Self-describe works for the admin and for every other identity.
	expectJSONBody(t, e.admin.get("/v1/identity/self/describe"), `{"identity":"`+e.admin.identity+`","admin":true,"created_at":"`+created+`"}`)
	// A non-admin gets the KES SDK's shape (selfdescribe_test.go).
	expectJSONBody(t, e.user.get("/v1/identity/self/describe"), `{"identity":"`+e.user.identity+`","admin":false,"created_at":"`+created+`","created_by":"`+e.admin.identity+`",`+
		`"policy":"minio","allow":{"/v1/key/generate/*":{},"/v1/status":{}},"deny":{"/v1/key/generate/x*":{}}}`)
	expectJSONBody(t, e.rsaUser.get("/v1/identity/self/describe"), `{"identity":"`+e.rsaUser.identity+`","admin":false,"created_at":"`+created+`","created_by":"`+e.admin.identity+`",`+
		`"policy":"empty"}`)
}

// expectJSONBody checks a 200 JSON response body byte for byte.
func expectJSONBody(t testing.TB, r response, want string) {
	t.Helper()
	expectOK(t, r)
	if string(r.body) != want+"\n" {
		t.Fatalf("%s:\n got %s\nwant %s", r.Request.URL.Path, r.body, want)
	}
}
