package main

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
)

// newIdentityResult is the JSON printed by `identity new`.
type newIdentityResult struct {
	APIKey   string `json:"api_key"`
	Identity string `json:"identity"`
}

func TestIdentityNewWritesFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "certs", "kes-server.key"), filepath.Join(dir, "certs", "kes-server.cert")
	var res newIdentityResult
	mustJSON(t, &res, "identity", "new", "kes_server", "--key", keyFile, "--cert", certFile,
		"--ip", "127.0.0.1", "--dns", "localhost")

	key, err := identity.ParseAPIKey(res.APIKey)
	if err != nil {
		t.Fatalf("printed API key: %v", err)
	}
	if key.Identity() != res.Identity {
		t.Errorf("printed identity %s is not the API key's %s", res.Identity, key.Identity())
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "kes_server" {
		t.Errorf("CN = %q, want kes_server", cert.Subject.CommonName)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !reflect.DeepEqual(cert.DNSNames, []string{"localhost"}) {
		t.Errorf("SANs = %v %v", cert.IPAddresses, cert.DNSNames)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage = %v, want client and server auth", cert.ExtKeyUsage)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("validity %v, want 720h", d)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Error("key file is not a PKCS#8 PEM")
	}

	// identity of <cert>, <api key> and <key file> agree; the output is bare.
	for _, arg := range []string{certFile, res.APIKey, keyFile} {
		if out := mustRun(t, "identity", "of", arg); out != res.Identity+"\n" {
			t.Errorf("identity of %s = %q, want %s", arg, out, res.Identity)
		}
	}
	if out := mustRun(t, "identity", certFile); out != res.Identity+"\n" {
		t.Errorf("identity <cert> = %q", out)
	}
	// identity <Ed25519 key file> converts it into the API key.
	var conv newIdentityResult
	mustJSON(t, &conv, "identity", keyFile, "--json")
	if conv != res {
		t.Errorf("identity <key file> = %+v, want %+v", conv, res)
	}

	// No overwrite without --force; the files stay as they were.
	wantErr(t, "already exists", "identity", "new", "--key", keyFile, "--cert", certFile)
	if after, _ := os.ReadFile(certFile); string(after) != string(certPEM) {
		t.Error("certificate was overwritten without --force")
	}
	var forced newIdentityResult
	mustJSON(t, &forced, "identity", "new", "--key", keyFile, "--cert", certFile, "--force", "--expiry", "1h")
	if forced.Identity == res.Identity || mustRun(t, "identity", "of", certFile) != forced.Identity+"\n" {
		t.Error("--force did not replace the files with the new identity")
	}
	cert2, _ := os.ReadFile(certFile)
	if c, err := identity.ParseCertificatePEM(cert2); err != nil || c.Subject.CommonName != forced.Identity {
		t.Errorf("default CN should be the identity: %v", err)
	}

	// Argument errors.
	wantErr(t, "must be given together", "identity", "new", "--key", keyFile)
	wantErr(t, "need --key and --cert", "identity", "new", "--ip", "127.0.0.1")
	wantErr(t, "not an IP address", "identity", "new", "--key", filepath.Join(dir, "a"), "--cert", filepath.Join(dir, "b"), "--ip", "nope")
	wantErr(t, "invalid API key", "identity", "of", "kes:v1:bogus")
}

func TestIdentityNewWithoutFiles(t *testing.T) {
	var res newIdentityResult
	mustJSON(t, &res, "identity", "new")
	key, err := identity.ParseAPIKey(res.APIKey)
	if err != nil || key.Identity() != res.Identity {
		t.Fatalf("identity new printed %+v (%v)", res, err)
	}
	r := runCLITerminal(t, "identity")
	if r.err != nil || !strings.Contains(r.stdout, "API key:   kes:v1:") || !strings.Contains(r.stdout, "Identity:  ") {
		t.Errorf("terminal identity = %q, %v", r.stdout, r.err)
	}
}

// guideAllow is the policy of the MinIO AWS guide.
var guideAllow = []string{
	"/v1/key/create/*", "/v1/key/generate/*", "/v1/key/decrypt/*", "/v1/key/bulk/decrypt",
	"/v1/key/list", "/v1/status", "/v1/metrics", "/v1/log/audit", "/v1/log/error",
}

// TestGuideFlow follows the MinIO guide with keyraft in place of kes: create
// the server and client identities, run the server with the generated
// certificate and a policy for the client identity, then create a key with
// KES_SERVER, KES_CLIENT_KEY and KES_CLIENT_CERT exported. It also covers the
// policy and identity commands against that configuration.
func TestGuideFlow(t *testing.T) {
	clearClientEnv(t)
	dir := t.TempDir()
	kesKey, kesCert := filepath.Join(dir, "kes", "kes-server.key"), filepath.Join(dir, "kes", "kes-server.cert")
	minioKey, minioCert := filepath.Join(dir, "minio", "minio-kes.key"), filepath.Join(dir, "minio", "minio-kes.cert")
	mustRun(t, "identity", "new", "kes_server", "--key", kesKey, "--cert", kesCert, "--ip", "127.0.0.1", "--dns", "localhost")
	mustRun(t, "identity", "new", "minio_server", "--key", minioKey, "--cert", minioCert, "--ip", "127.0.0.1", "--dns", "localhost")
	minioID := strings.TrimSpace(mustRun(t, "identity", "of", minioCert))

	s := startCLIServer(t, func(cfg *config.Config) {
		cfg.TLS.Cert, cfg.TLS.Key = kesCert, kesKey
		cfg.Policies = map[string]config.Policy{
			"minio":    {Allow: guideAllow, Identities: []string{minioID}},
			"readonly": {Allow: []string{"/v1/key/describe/*"}, Deny: []string{"/v1/key/describe/secret*"}},
		}
	})

	t.Setenv("KES_SERVER", "https://"+s.addr)
	t.Setenv("KES_CLIENT_KEY", minioKey)
	t.Setenv("KES_CLIENT_CERT", minioCert)
	mustRun(t, "key", "create", "-k", "encrypted-bucket-key")
	// The server certificate verifies with --ca instead of -k.
	mustRun(t, "key", "create", "--ca", kesCert, "second-key")
	wantErr(t, "certificate", "key", "create", "third-key")
	// The guide's policy does not allow describing keys.
	wantErr(t, "not authorized: insufficient permissions", "key", "info", "-k", "encrypted-bucket-key")

	// identity info describes the client and its policy.
	var self identityInfoJSON
	mustJSON(t, &self, "identity", "info", "-k")
	if self.Identity != minioID || self.Admin || self.Policy != "minio" {
		t.Errorf("identity info = %+v, want %s with policy minio", self, minioID)
	}
	if len(self.Allow) != len(guideAllow) {
		t.Errorf("identity info allow = %q, want the %d guide patterns", self.Allow, len(guideAllow))
	}

	// An explicit --api-key wins over the exported client certificate.
	admin := []string{"-k", "-a", s.adminKey.String()}
	var info keyInfoJSON
	mustJSON(t, &info, append([]string{"key", "info", "encrypted-bucket-key"}, admin...)...)
	if info.Name != "encrypted-bucket-key" || info.CreatedBy != minioID {
		t.Errorf("key info = %+v, want created by %s", info, minioID)
	}

	// Policies.
	var names []string
	mustJSON(t, &names, append([]string{"policy", "ls"}, admin...)...)
	if want := []string{"minio", "readonly"}; !reflect.DeepEqual(names, want) {
		t.Errorf("policy ls = %q, want %q", names, want)
	}
	names = nil
	mustJSON(t, &names, append([]string{"ls", "-p", "read*"}, admin...)...)
	if want := []string{"readonly"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ls -p read* = %q, want %q", names, want)
	}
	var pol policyJSON
	mustJSON(t, &pol, append([]string{"policy", "show", "readonly"}, admin...)...)
	if pol.Name != "readonly" || !reflect.DeepEqual(pol.Allow, []string{"/v1/key/describe/*"}) || !reflect.DeepEqual(pol.Deny, []string{"/v1/key/describe/secret*"}) {
		t.Errorf("policy show = %+v", pol)
	}
	var pinfo policyInfoJSON
	mustJSON(t, &pinfo, append([]string{"policy", "info", "minio"}, admin...)...)
	if pinfo.Name != "minio" {
		t.Errorf("policy info = %+v", pinfo)
	}
	wantErr(t, "policy does not exist", append([]string{"policy", "info", "nope"}, admin...)...)
	r := runCLITerminal(t, append([]string{"policy", "show", "readonly"}, admin...)...)
	if r.err != nil || !strings.Contains(r.stdout, "Allow:\n  /v1/key/describe/*\n") || !strings.Contains(r.stdout, "Deny:\n  /v1/key/describe/secret*\n") {
		t.Errorf("terminal policy show = %q, %v", r.stdout, r.err)
	}

	// Identities.
	names = nil
	mustJSON(t, &names, append([]string{"identity", "ls"}, admin...)...)
	if !slices.Contains(names, minioID) || !slices.Contains(names, s.adminKey.Identity()) {
		t.Errorf("identity ls = %q, want the admin and %s", names, minioID)
	}
	names = nil
	mustJSON(t, &names, append([]string{"ls", "-i", minioID[:8]}, admin...)...)
	if !slices.Contains(names, minioID) {
		t.Errorf("ls -i %s = %q", minioID[:8], names)
	}
	var other identityInfoJSON
	mustJSON(t, &other, append([]string{"identity", "info", minioID}, admin...)...)
	if other.Policy != "minio" {
		t.Errorf("identity info %s = %+v, want policy minio", minioID, other)
	}
	var adminInfo identityInfoJSON
	mustJSON(t, &adminInfo, append([]string{"identity", "info"}, admin...)...)
	if !adminInfo.Admin || adminInfo.Identity != s.adminKey.Identity() {
		t.Errorf("admin identity info = %+v", adminInfo)
	}
	wantErr(t, "none of the others can be", append([]string{"ls", "-i", "-p"}, admin...)...)
}
