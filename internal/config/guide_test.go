package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// The two configurations of /work/shared/spec/minio-sse-aws-guide.md, restored
// to real YAML in testdata/, must load unchanged.

var guideAllow = []string{
	"/v1/key/create/*", "/v1/key/generate/*", "/v1/key/decrypt/*", "/v1/key/bulk/decrypt",
	"/v1/key/list", "/v1/status", "/v1/metrics", "/v1/log/audit", "/v1/log/error",
}

// withCertDir rewrites the guide's /opt/kes/certs paths to dir, which holds
// a freshly generated kes-server.cert / kes-server.key, and writes the result
// to dir/config.yaml.
func withCertDir(t *testing.T, testdata, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", testdata))
	if err != nil {
		t.Fatal(err)
	}
	genCert(t, dir, "kes-server", certOpts{})
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, strings.ReplaceAll(string(data), "/opt/kes/certs/", dir+"/"))
	return path
}

func TestGuideLocalConfig(t *testing.T) {
	t.Setenv("MINIO_IDENTITY_HASH", hexB)

	data, err := os.ReadFile("testdata/guide-aws.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data)) // verbatim, /opt paths and all
	if c.Address != "0.0.0.0:7373" || c.Admin != "disabled" || c.AdminEnabled() {
		t.Fatalf("address/admin = %q/%q", c.Address, c.Admin)
	}
	if c.TLS.Key != "/opt/kes/certs/kes-server.key" || c.TLS.Cert != "/opt/kes/certs/kes-server.cert" {
		t.Fatalf("tls = %+v", c.TLS)
	}
	want := map[string]Policy{"minio": {Allow: guideAllow, Identities: []string{hexB}}}
	if !reflect.DeepEqual(c.Policies, want) {
		t.Fatalf("policies = %+v", c.Policies)
	}
	wantAWS := &AWS{Endpoint: "secretsmanager.REGION.amazonaws.com", Region: "REGION",
		Credentials: AWSCredentials{AccessKey: "AWSACCESSKEY", SecretKey: "AWSSECRETKEY"}}
	if c.Keystore.FS != nil || !reflect.DeepEqual(c.Keystore.AWS, wantAWS) {
		t.Fatalf("keystore = %+v %+v", c.Keystore, c.Keystore.AWS)
	}
	if c.Log.Error.Level() != hclog.Info || c.Log.Audit.Off() || c.Cache != (Cache{Any: DefaultCacheAny, Unused: DefaultCacheUnused}) {
		t.Fatalf("defaults: log=%+v cache=%+v", c.Log, c.Cache)
	}

	// With real TLS files it passes Load as well.
	if _, err := Load(withCertDir(t, "guide-aws.yaml", t.TempDir())); err != nil {
		t.Fatalf("Load: %v", err)
	}

	// Without the variable, loading fails naming it and its line.
	unsetenv(t, "MINIO_IDENTITY_HASH")
	_, err = Parse(data)
	wantErr(t, err, "config: referenced env. variable 'MINIO_IDENTITY_HASH' in line '33' not found")
}

func TestGuideReferenceConfig(t *testing.T) {
	t.Setenv("ROOT_IDENTITY", hexA)
	t.Setenv("MINIO_IDENTITY", hexB)
	t.Setenv("AWS_ACCESS_KEY", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

	cfg, err := filepath.Abs("testdata/guide-aws-reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The guide uses relative TLS paths (kes-server.key), resolved against
	// the working directory as KES does.
	dir := t.TempDir()
	genCert(t, dir, "kes-server", certOpts{})
	t.Chdir(dir)

	c, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Admin != hexA || !c.AdminEnabled() {
		t.Fatalf("admin = %q", c.Admin)
	}
	want := map[string]Policy{"minio-server": {Allow: guideAllow, Identities: []string{hexB}}}
	if !reflect.DeepEqual(c.Policies, want) {
		t.Fatalf("policies = %+v", c.Policies)
	}
	if wantKeys := []string{"minio-encryption-key-alpha", "minio-encryption-key-baker", "minio-encryption-key-charlie"}; !reflect.DeepEqual(c.Keys, wantKeys) {
		t.Fatalf("keys = %v", c.Keys)
	}
	wantAWS := &AWS{Endpoint: "secretsmanager.REGION.amazonaws", Region: "REGION",
		Credentials: AWSCredentials{AccessKey: "AKIAEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}
	if !reflect.DeepEqual(c.Keystore.AWS, wantAWS) {
		t.Fatalf("aws = %+v", c.Keystore.AWS)
	}
	if _, err := c.TLS.LoadCertificate(); err != nil {
		t.Fatalf("LoadCertificate: %v", err)
	}

	// The guide's alternative "set ${MINIO_IDENTITY} as ${ROOT_IDENTITY}"
	// requires dropping the policy; keeping both is rejected like KES does.
	t.Setenv("ROOT_IDENTITY", hexB)
	_, err = Load(cfg)
	wantErr(t, err, `config: policy.minio-server.identities: identity "`+hexB+`" is the admin identity`)
}

func TestSeedConfig(t *testing.T) {
	t.Setenv("MINIO_IDENTITY_HASH", hexB)
	c, err := Load(withCertDir(t, "seed.yaml", t.TempDir()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Keystore.AWS != nil || c.Keystore.FS == nil || c.Keystore.FS.Path != "/var/lib/keyraft/keys" {
		t.Fatalf("keystore = %+v", c.Keystore)
	}
	if !reflect.DeepEqual(c.Policies["minio"].Identities, []string{hexB}) {
		t.Fatalf("identities = %v", c.Policies["minio"].Identities)
	}
}
