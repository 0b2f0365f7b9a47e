package systemtest

// The "must show" list of AWS Secrets Manager as the durable root keystore:
// the MinIO guide's KES config and MinIO's startup sequence, migration from
// a KES-written keystore, throttling, an outage, a hung AWS, and how many
// AWS calls the cache saves. Every test runs against its own kumo emulator
// behind the awstest fault proxy.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/server"
)

// awsGuideKeys are the `keys:` of the guide's reference config.
var awsGuideKeys = []string{"minio-encryption-key-alpha", "minio-encryption-key-baker", "minio-encryption-key-charlie"}

// TestAWSMinIOGuideConfig runs a node from the second config of the MinIO
// SSE-with-AWS guide, verbatim except for the endpoint, and drives it the
// way MinIO does at startup.
func TestAWSMinIOGuideConfig(t *testing.T) {
	b := newAWSBackend(t)
	dir := t.TempDir()
	awsWriteCert(t, dir, "kes-server") // the guide's tls.key/tls.cert, relative paths
	minio := awsWriteCert(t, dir, "minio-kes")
	root, _ := identityKey(t)
	t.Setenv("ROOT_IDENTITY", root.Identity())
	t.Setenv("MINIO_IDENTITY", minio.identity)
	t.Setenv("AWS_ACCESS_KEY", "AKIAKEYRAFTSYSTEMTEST")
	t.Setenv("AWS_SECRET_KEY", "keyraft/systemtest/secret-key")

	guide, err := os.ReadFile(filepath.Join("..", "internal", "config", "testdata", "guide-aws-reference.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const endpoint = "endpoint: secretsmanager.REGION.amazonaws\n"
	if n := bytes.Count(guide, []byte(endpoint)); n != 1 {
		t.Fatalf("the guide config has %d lines %q, want 1", n, endpoint)
	}
	path := filepath.Join(dir, "kes-config.yaml")
	if err := os.WriteFile(path, bytes.Replace(guide, []byte(endpoint), []byte("endpoint: "+b.proxy.URL+"\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // tls: key: kes-server.key is relative to the working directory, as in KES
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if cfg.Admin != root.Identity() || !reflect.DeepEqual(cfg.Keys, awsGuideKeys) ||
		!reflect.DeepEqual(cfg.Policies["minio-server"].Identities, []string{minio.identity}) {
		t.Fatalf("loaded admin %q, keys %v, policies %+v", cfg.Admin, cfg.Keys, cfg.Policies)
	}
	if a := cfg.Keystore.AWS; a == nil || a.Endpoint != b.proxy.URL || a.Region != "REGION" ||
		a.Credentials.AccessKey != "AKIAKEYRAFTSYSTEMTEST" || a.Credentials.SecretKey != "keyraft/systemtest/secret-key" {
		t.Fatalf("keystore = %+v", cfg.Keystore.AWS)
	}
	cfg.Cluster.DataDir = filepath.Join(dir, "data")
	cfg.Cluster.Bootstrap = true
	_, url := awsServeNode(t, cfg, server.Options{HealthInterval: 200 * time.Millisecond})

	// MinIO: MINIO_KMS_KES_CERT_FILE/KEY_FILE = minio-kes.*, CAPATH = kes-server.cert.
	caPEM, err := os.ReadFile(filepath.Join(dir, "kes-server.cert"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	mc, err := client.New([]string{url}, client.WithCertificate(minio.cert), client.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}

	// MinIO's startup: generate on the default key with context {}, which
	// must fail with exactly 404 "key does not exist"; then create; then
	// the config/IAM encryption with the default key.
	const defaultKey = "minio-backend-default-key"
	if _, err := mc.GenerateKey(bg, defaultKey, []byte("{}")); !errors.Is(err, client.ErrKeyNotFound) || awsErrCode(err) != 404 {
		t.Fatalf("startup generate on a missing default key: %v, want 404 key does not exist", err)
	}
	if err := mc.CreateKey(bg, defaultKey); err != nil {
		t.Fatalf("startup create: %v", err)
	}
	for _, name := range append([]string{defaultKey}, awsGuideKeys...) {
		for _, ctx := range []string{`{".minio.sys":".minio.sys/config/config.json"}`, `{".minio.sys":".minio.sys/config/iam/format.json"}`} {
			dek, err := mc.GenerateKey(bg, name, []byte(ctx))
			if err != nil || len(dek.Plaintext) != 32 {
				t.Fatalf("generate %s: %v (%d bytes)", name, err, len(dek.Plaintext))
			}
			pt, err := mc.Decrypt(bg, name, dek.Ciphertext, []byte(ctx))
			if err != nil || !bytes.Equal(pt, dek.Plaintext) {
				t.Fatalf("decrypt %s: %v", name, err)
			}
			if _, err := mc.Decrypt(bg, name, dek.Ciphertext, []byte(`{"other":"context"}`)); !errors.Is(err, client.ErrDecrypt) {
				t.Fatalf("decrypt %s with another context: %v, want %v", name, err, client.ErrDecrypt)
			}
		}
	}
	// Old MinIO always creates at startup and accepts "exists".
	if err := mc.CreateKey(bg, defaultKey); !errors.Is(err, client.ErrKeyExists) {
		t.Fatalf("second create: %v, want %v", err, client.ErrKeyExists)
	}

	// The keys are secrets named exactly as the keys, in the KES stored
	// format; the default key records MinIO as its creator.
	want := append(append([]string{}, awsGuideKeys...), defaultKey, "keyraft.seal")
	slices.Sort(want)
	if got := b.names(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("secrets in AWS = %v, want %v", got, want)
	}
	for _, name := range append([]string{defaultKey}, awsGuideKeys...) {
		kv, err := crypto.ParseKeyVersion([]byte(b.get(t, name)))
		if err != nil || kv.HMAC == nil {
			t.Fatalf("secret %s is not a KES key: %v", name, err)
		}
		if name == defaultKey && kv.CreatedBy != minio.identity {
			t.Fatalf("default key created_by %q, want MinIO's identity", kv.CreatedBy)
		}
		kv.Zero()
	}

	// mc admin kms key list; the seal entry is not a key.
	names, err := mc.ListAllKeys(bg, "")
	if wantKeys := append(append([]string{}, awsGuideKeys...), defaultKey); err != nil || !reflect.DeepEqual(names, awsSorted(wantKeys)) {
		t.Fatalf("list = %v, %v; want %v", names, err, awsSorted(wantKeys))
	}
	if names, err := mc.ListAllKeys(bg, "minio-encryption-key-b"); err != nil || !reflect.DeepEqual(names, []string{"minio-encryption-key-baker"}) {
		t.Fatalf("list with prefix = %v, %v", names, err)
	}
	// The policy does not allow delete.
	if err := mc.DeleteKey(bg, awsGuideKeys[0]); !errors.Is(err, client.ErrNotAllowed) || awsErrCode(err) != 403 {
		t.Fatalf("minio delete: %v, want 403 %v", err, client.ErrNotAllowed)
	}
	if _, err := mc.GenerateKey(bg, awsGuideKeys[0], nil); err != nil {
		t.Fatalf("key after a forbidden delete: %v", err)
	}
	// mc admin kms status.
	if st, err := mc.Status(bg); err != nil || st.KeyStoreUnreachable || st.KeyStoreUnavailable || st.KeyStoreLatency <= 0 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// Seal, 3 config keys, default key, and the repeated create that AWS
	// answered with ResourceExistsException.
	if n := b.proxy.Calls("CreateSecret"); n != 6 {
		t.Fatalf("%d CreateSecret calls through the configured endpoint, want 6", n)
	}
}

func awsSorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// awsKeyVector and awsCipherVector are entries of internal/crypto/testdata: real
// KES stored keys and KES ciphertexts.
type awsKeyVector struct {
	Name        string `json:"name"`
	Stored      string `json:"stored"`
	KeyType     string `json:"key_type"`
	Key         string `json:"key"`
	HMACKey     string `json:"hmac_key"`
	CreatedAt   string `json:"created_at"`
	CreatedBy   string `json:"created_by"`
	NoAlgorithm bool   `json:"no_algorithm"`
	Fail        bool   `json:"fail"`
}

type awsCipherVector struct {
	Name           string `json:"name"`
	KeyType        string `json:"key_type"`
	Key            string `json:"key"`
	Plaintext      string `json:"plaintext"`
	Context        string `json:"context"`
	Format         string `json:"format"`
	CiphertextText string `json:"ciphertext_text"`
	CiphertextB64  string `json:"ciphertext_b64"`
	Fail           bool   `json:"fail"`
}

func awsReadVectors(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "internal", "crypto", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func awsB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// awsMigratedKey is a secret seeded as KES would have written it, and what
// Keyraft must report for it.
type awsMigratedKey struct {
	name, value, algorithm, createdBy string
	createdAt                         time.Time
	hmacKey                           []byte // nil: legacy key without HMAC
}

// TestAWSMigrationFromKES starts a node on a Secrets Manager keystore KES
// wrote: keys in the legacy JSON and the base64 protobuf format, secret
// name = key name. Every key is listed, describes with its original
// metadata and decrypts KES's ciphertexts.
func TestAWSMigrationFromKES(t *testing.T) {
	var keys struct {
		Parse []awsKeyVector `json:"parse"`
	}
	var cts struct {
		Decrypt []awsCipherVector `json:"decrypt"`
	}
	awsReadVectors(t, "keys.json", &keys)
	awsReadVectors(t, "ciphertexts.json", &cts)

	var seeded []awsMigratedKey
	// The stored keys of the vectors, byte for byte.
	for _, v := range keys.Parse {
		if v.Fail {
			continue
		}
		mk := awsMigratedKey{name: "kes-" + v.Name, value: v.Stored, algorithm: v.KeyType, createdBy: v.CreatedBy}
		if v.CreatedAt != "" {
			tm, err := time.Parse(time.RFC3339Nano, v.CreatedAt)
			if err != nil {
				t.Fatal(err)
			}
			mk.createdAt = tm
		}
		if v.HMACKey != "" {
			mk.hmacKey = awsB64(t, v.HMACKey)
		}
		seeded = append(seeded, mk)
	}
	// The keys of the ciphertext vectors, each in both stored formats.
	ctKeys := map[string][2]string{} // key_type/key -> json name, protobuf name
	created := time.Date(2021, 6, 1, 12, 30, 45, 0, time.UTC)
	const creator = "0a6fbb06e37d1e1b7c2e9b0d58cbcf0ba8f7a2e4f5b7e4a2b07b6a0bd43c9a1e"
	for _, v := range cts.Decrypt {
		id := v.KeyType + "/" + v.Key
		if _, ok := ctKeys[id]; ok {
			continue
		}
		n := fmt.Sprintf("kes-ct-%d-%s", len(ctKeys), v.KeyType)
		ctKeys[id] = [2]string{n + "-json", n + "-protobuf"}
		legacyAlg := map[string]string{"AES256": "AES256-GCM_SHA256", "ChaCha20": "XCHACHA20-POLY1305"}[v.KeyType]
		legacy, err := json.Marshal(map[string]string{
			"bytes": v.Key, "algorithm": legacyAlg, "created_at": created.Format(time.RFC3339), "created_by": creator,
		})
		if err != nil {
			t.Fatal(err)
		}
		kt, err := crypto.ParseKeyType(v.KeyType)
		if err != nil {
			t.Fatal(err)
		}
		mac, err := crypto.GenerateHMACKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		kv := crypto.KeyVersion{Key: crypto.SecretKey{Type: kt, Key: [crypto.KeySize]byte(awsB64(t, v.Key))}, HMAC: &mac, CreatedAt: created, CreatedBy: creator}
		pb, err := crypto.EncodeKeyVersion(kv)
		if err != nil {
			t.Fatal(err)
		}
		seeded = append(seeded,
			awsMigratedKey{name: n + "-json", value: string(legacy), algorithm: v.KeyType, createdAt: created, createdBy: creator},
			awsMigratedKey{name: n + "-protobuf", value: string(pb), algorithm: v.KeyType, createdAt: created, createdBy: creator, hmacKey: bytes.Clone(mac.Key[:])})
	}

	b := newAWSBackend(t)
	var names []string
	for _, k := range seeded {
		b.put(t, k.name, k.value)
		names = append(names, k.name)
	}
	slices.Sort(names)
	node := startAWSNode(t, b.open(t, nil, nil), awsNodeOptions{
		cache: config.Cache{Any: time.Hour, Unused: time.Hour}, healthInterval: 200 * time.Millisecond,
	})
	cl := node.client(t)

	listed, err := cl.ListAllKeys(bg, "")
	if err != nil || !reflect.DeepEqual(listed, names) {
		t.Fatalf("list = %v, %v; want %v", listed, err, names)
	}
	for _, k := range seeded {
		info, err := cl.DescribeKey(bg, k.name)
		if err != nil {
			t.Fatalf("describe %s: %v", k.name, err)
		}
		if info.Name != k.name || info.Algorithm != k.algorithm || !info.CreatedAt.Equal(k.createdAt) || info.CreatedBy != k.createdBy {
			t.Errorf("describe %s = %+v, want algorithm %s created %v by %q", k.name, info, k.algorithm, k.createdAt, k.createdBy)
		}
		msg := []byte("keyraft migration check")
		sum, err := cl.HMAC(bg, k.name, msg)
		switch {
		case k.hmacKey == nil && awsErrCode(err) != 409:
			t.Errorf("HMAC with legacy key %s: %v, want 409", k.name, err)
		case k.hmacKey != nil:
			mac := hmac.New(sha256.New, k.hmacKey)
			mac.Write(msg)
			if err != nil || !hmac.Equal(sum, mac.Sum(nil)) {
				t.Errorf("HMAC with %s: %x, %v", k.name, sum, err)
			}
		}
		// Keys keep working for new data.
		dek, err := cl.GenerateKey(bg, k.name, []byte("new"))
		if err != nil {
			t.Fatalf("generate with %s: %v", k.name, err)
		}
		if pt, err := cl.Decrypt(bg, k.name, dek.Ciphertext, []byte("new")); err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("round trip with %s: %v", k.name, err)
		}
	}

	// KES ciphertexts (raw, MessagePack and JSON formats, with and without
	// context) decrypt under both stored forms of their key; the negative
	// vectors are rejected with KES's decryption error.
	decrypted := 0
	for _, v := range cts.Decrypt {
		ct := []byte(v.CiphertextText)
		if v.CiphertextText == "" {
			ct = awsB64(t, v.CiphertextB64)
		}
		ad := awsB64(t, v.Context)
		for _, name := range ctKeys[v.KeyType+"/"+v.Key] {
			pt, err := cl.Decrypt(bg, name, ct, ad)
			switch {
			case v.Fail && !errors.Is(err, client.ErrDecrypt):
				t.Errorf("%s with %s: %v, want %v", v.Name, name, err, client.ErrDecrypt)
			case !v.Fail && (err != nil || !bytes.Equal(pt, awsB64(t, v.Plaintext))):
				t.Errorf("%s with %s: %x, %v", v.Name, name, pt, err)
			case !v.Fail:
				decrypted++
			}
		}
	}
	// A legacy key without an algorithm opens legacy ciphertexts of either
	// cipher, as KES does.
	for _, v := range cts.Decrypt {
		if v.Fail || v.Format == "raw" || v.Key != "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" {
			continue
		}
		ct := []byte(v.CiphertextText)
		if v.CiphertextText == "" {
			ct = awsB64(t, v.CiphertextB64)
		}
		pt, err := cl.Decrypt(bg, "kes-legacy-json-bytes-only-zero", ct, awsB64(t, v.Context))
		if err != nil || !bytes.Equal(pt, awsB64(t, v.Plaintext)) {
			t.Errorf("%s with the algorithm-less legacy key: %v", v.Name, err)
		}
		decrypted++
	}
	t.Logf("migration: %d KES keys listed and described, %d KES ciphertext decryptions", len(seeded), decrypted)
	if decrypted < 2*8 {
		t.Fatalf("only %d vector decryptions", decrypted)
	}
	// The node read each key from AWS once, and wrote nothing but its seal.
	if got := b.proxy.Calls("GetSecretValue"); got != len(seeded)+1 {
		t.Errorf("%d GetSecretValue calls, want %d (each key once, plus the seal)", got, len(seeded)+1)
	}
	if got := b.proxy.Calls("CreateSecret"); got != 1 {
		t.Errorf("%d CreateSecret calls, want 1 (the seal)", got)
	}
}
