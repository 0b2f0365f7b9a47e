package systemtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
)

func newCertFiles(t *testing.T, dir, name string, ed bool) (certFile, keyFile, id string) {
	t.Helper()
	cert, err := makeCert(name, ed)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".cert"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, cert.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, cert.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert.id
}

type tlsCert struct {
	certPEM, keyPEM []byte
	id              string
}

func makeCert(name string, ed bool) (*tlsCert, error) {
	var signer crypto.Signer
	if ed {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer = priv
	} else {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		signer = priv
	}
	c, der, err := identity.SelfSigned(signer, identity.CertOptions{
		Subject: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		Expiry: time.Hour, ServerAuth: true, ClientAuth: true,
	})
	if err != nil {
		return nil, err
	}
	keyPEM, err := identity.EncodePrivateKeyPEM(signer)
	if err != nil {
		return nil, err
	}
	return &tlsCert{certPEM: identity.EncodeCertificatePEM(der), keyPEM: keyPEM, id: identity.Of(c)}, nil
}

// startFromConfig starts a one-node cluster from cfg on loopback.
func startFromConfig(t *testing.T, cfg *config.Config) *server.Server {
	t.Helper()
	cfg.Cluster.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Cluster.Bootstrap = true
	if cfg.Cluster.NodeID == "" {
		cfg.Cluster.NodeID = "node"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	srv, err := server.Start(ctx, cfg, server.Options{
		APIListener: listenT(t), RaftListener: listenT(t), AuditOut: io.Discard,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testLog{t, &done}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func listenT(t *testing.T) net.Listener {
	ln := testutil.Listen(t)
	return ln
}

func certClient(t *testing.T, srv *server.Server, certFile, keyFile string) *client.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New([]string{"https://" + srv.Addr().String()}, client.WithCertificate(cert), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMinIODocumentationConfig loads the KES configuration from MinIO's
// documentation with only the keystore changed to fs, and checks that the
// minio identity can do what MinIO needs and nothing more.
func TestMinIODocumentationConfig(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey, _ := newCertFiles(t, dir, "kes-server", false)
	minioCert, minioKey, minioID := newCertFiles(t, dir, "minio-kes", true)
	seed, err := os.ReadFile("../internal/config/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"/opt/kes/certs/kes-server.key", srvKey,
		"/opt/kes/certs/kes-server.cert", srvCert,
		"/var/lib/keyraft/keys", filepath.Join(dir, "keys"),
	).Replace(string(seed))
	file := filepath.Join(dir, "kes-config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MINIO_IDENTITY_HASH", minioID)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminEnabled() {
		t.Fatal("root: disabled must disable the admin")
	}
	srv := startFromConfig(t, cfg)
	minio := certClient(t, srv, minioCert, minioKey)
	ctx := context.Background()

	// MinIO's startup: generate on the default key, 404, create, generate.
	const key = "minio-backend-default-key"
	if _, err := minio.GenerateKey(ctx, key, []byte(`{}`)); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("generate before create: %v", err)
	}
	if err := minio.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	objCtx := []byte(`{"bucket":"bucket/object"}`)
	dek, err := minio.GenerateKey(ctx, key, objCtx)
	if err != nil || len(dek.Plaintext) != 32 {
		t.Fatalf("generate: %v", err)
	}
	pt, err := minio.Decrypt(ctx, key, dek.Ciphertext, objCtx)
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Fatalf("decrypt: %v", err)
	}
	if _, err := minio.Decrypt(ctx, key, dek.Ciphertext, []byte(`{"bucket":"other"}`)); !errors.Is(err, client.ErrDecrypt) {
		t.Fatalf("decrypt with another context: %v", err)
	}
	plains, err := minio.BulkDecrypt(ctx, key, []client.DecryptItem{{Ciphertext: dek.Ciphertext, Context: objCtx}})
	if err != nil || len(plains) != 1 || !bytes.Equal(plains[0], dek.Plaintext) {
		t.Fatalf("bulk decrypt (granted by /v1/key/bulk/decrypt): %v", err)
	}
	if names, err := minio.ListAllKeys(ctx, ""); err != nil || len(names) != 1 {
		t.Fatalf("list (granted by /v1/key/list): %v %v", names, err)
	}
	if _, err := minio.Status(ctx); err != nil {
		t.Fatalf("status: %v", err)
	}
	if err := minio.DeleteKey(ctx, key); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("delete must be denied: %v", err)
	}
	if _, err := minio.Encrypt(ctx, key, []byte("x"), nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("encrypt must be denied: %v", err)
	}
	if _, err := minio.DescribeKey(ctx, key); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("describe must be denied: %v", err)
	}
	self, pol, err := minio.DescribeSelf(ctx)
	if err != nil || self.Policy != "minio" || pol == nil {
		t.Fatalf("self-describe of a non-admin: %+v %v", self, err)
	}
}

// TestKESKeystoreServedUnchanged points a node at a directory laid out as
// KES's fs keystore writes it (one file per key, KES's stored formats) and
// decrypts ciphertexts that KES produced.
func TestKESKeystoreServedUnchanged(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(keys, 0o755)

	var vectors struct {
		Parse []struct {
			Name, Stored  string
			CreatedByJSON string `json:"created_by"`
		} `json:"parse"`
	}
	readJSON(t, "../internal/crypto/testdata/keys.json", &vectors)
	var cts struct {
		Decrypt []struct {
			Name, Key, Plaintext, Format string
			KeyType                      string `json:"key_type"`
			Text                         string `json:"ciphertext_text"`
			Ciphertext                   string `json:"ciphertext_b64"`
			Context                      string `json:"context"` // base64
			Fail                         bool   `json:"fail"`
		} `json:"decrypt"`
	}
	readJSON(t, "../internal/crypto/testdata/ciphertexts.json", &cts)

	// Keys exactly as KES stored them (HEAD protobuf and legacy JSON).
	stored := map[string]string{}
	for _, p := range vectors.Parse {
		if strings.HasPrefix(p.Name, "json-missing") {
			continue // malformed inputs, not keys
		}
		name := strings.ReplaceAll(p.Name, "_", "-")
		stored[name] = p.CreatedByJSON
		if err := os.WriteFile(filepath.Join(keys, name), []byte(p.Stored), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Keys for the ciphertext vectors, in the 2023 JSON format KES wrote.
	alg := map[string]string{"AES256": "AES256-GCM_SHA256", "ChaCha20": "XCHACHA20-POLY1305"}
	for _, v := range cts.Decrypt {
		name := "ct-" + v.Name
		body, _ := json.Marshal(map[string]string{"version": "v1", "bytes": v.Key, "algorithm": alg[v.KeyType], "created_at": "2023-01-02T03:04:05Z"})
		os.WriteFile(filepath.Join(keys, name), body, 0o644)
	}

	srvCert, srvKey, _ := newCertFiles(t, dir, "server", false)
	admin, _ := identityKey(t)
	cfg := &config.Config{
		Address:  "127.0.0.1:0",
		Admin:    admin.Identity(),
		TLS:      config.TLS{Cert: srvCert, Key: srvKey},
		Cache:    config.Cache{Any: time.Minute, Unused: time.Minute},
		Keystore: config.Keystore{FS: &config.FS{Path: keys}},
	}
	srv := startFromConfig(t, cfg)
	c, err := client.New([]string{"https://" + srv.Addr().String()}, client.WithAPIKey(admin), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names, err := c.ListAllKeys(ctx, "")
	if err != nil || len(names) != len(stored)+len(cts.Decrypt) {
		t.Fatalf("list = %d names (%v), want %d", len(names), err, len(stored)+len(cts.Decrypt))
	}
	for name, createdBy := range stored {
		info, err := c.DescribeKey(ctx, name)
		if err != nil || info.CreatedBy != createdBy {
			t.Fatalf("describe %s = %+v, %v", name, info, err)
		}
	}
	if info, _ := c.DescribeKey(ctx, "legacy-json-aes256"); !info.CreatedAt.Equal(time.Date(2009, 11, 10, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("created_at not preserved: %v", info.CreatedAt)
	}
	for _, v := range cts.Decrypt {
		ct := []byte(v.Text)
		if v.Text == "" {
			ct, _ = base64.StdEncoding.DecodeString(v.Ciphertext)
		}
		want, _ := base64.StdEncoding.DecodeString(v.Plaintext)
		assoc, _ := base64.StdEncoding.DecodeString(v.Context)
		pt, err := c.Decrypt(ctx, "ct-"+v.Name, ct, assoc)
		if v.Fail {
			if !errors.Is(err, client.ErrDecrypt) {
				t.Fatalf("KES negative vector %s: %v, want %v", v.Name, err, client.ErrDecrypt)
			}
			continue
		}
		if err != nil || !bytes.Equal(pt, want) {
			t.Fatalf("decrypt KES vector %s (%s): %v", v.Name, v.Format, err)
		}
	}
	// A legacy key without an algorithm decrypts KES ChaCha20 JSON
	// ciphertexts (the recorded algorithm is honoured).
	for _, v := range cts.Decrypt {
		if v.Format == "json" && v.KeyType == "ChaCha20" && !v.Fail && v.Key == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" {
			want, _ := base64.StdEncoding.DecodeString(v.Plaintext)
			if pt, err := c.Decrypt(ctx, "legacy-json-bytes-only-zero", []byte(v.Text), nil); err != nil || !bytes.Equal(pt, want) {
				t.Fatalf("algorithm-less key, ChaCha20 ciphertext %s: %v", v.Name, err)
			}
		}
	}
	// Keyraft wrote nothing into the KES directory but what KES would.
	entries, _ := os.ReadDir(keys)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("stray file %s in the keystore", e.Name())
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
