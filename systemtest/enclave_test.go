package systemtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/server"
)

func apiKeyClient(t *testing.T, addr string, key identity.APIKey, enclave string) *client.Client {
	t.Helper()
	opts := []client.Option{client.WithAPIKey(key), client.WithInsecureSkipVerify()}
	if enclave != "" {
		opts = append(opts, client.WithEnclave(enclave))
	}
	c, err := client.New([]string{"https://" + addr}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnclavesIsolateTenants checks that an enclave's keys, policies and
// identities are invisible to other enclaves, that its admin manages it
// and nothing else, and that MinIO-style clients select it with the
// Kes-Enclave header.
func TestEnclavesIsolateTenants(t *testing.T) {
	ctx := context.Background()
	cfg, admin, err := server.DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := startFromConfig(t, cfg)
	addr := srv.Addr().String()
	root := apiKeyClient(t, addr, admin, "")
	tenantAdmin, _ := identityKey(t)
	minio, _ := identityKey(t)

	if err := root.CreateEnclave(ctx, "tenant-a", tenantAdmin.Identity()); err != nil {
		t.Fatal(err)
	}
	if err := root.CreateEnclave(ctx, "tenant-a", tenantAdmin.Identity()); !errors.Is(err, client.ErrEnclaveExists) {
		t.Fatalf("create twice: %v", err)
	}
	ta := apiKeyClient(t, addr, tenantAdmin, "tenant-a")
	if err := ta.CreateKey(ctx, "k"); err != nil {
		t.Fatalf("enclave admin creates a key: %v", err)
	}
	dek, err := ta.GenerateKey(ctx, "k", []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	// The default enclave does not see it, and may hold its own "k".
	if _, err := root.DescribeKey(ctx, "k"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("tenant key visible in the default enclave: %v", err)
	}
	if err := root.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Decrypt(ctx, "k", dek.Ciphertext, []byte("c")); !errors.Is(err, client.ErrDecrypt) {
		t.Fatalf("default enclave's k decrypted the tenant's ciphertext: %v", err)
	}
	names, err := root.ListAllKeys(ctx, "")
	if err != nil || len(names) != 1 {
		t.Fatalf("default listing = %v, %v", names, err)
	}
	if names, err := ta.ListAllKeys(ctx, ""); err != nil || len(names) != 1 || names[0] != "k" {
		t.Fatalf("tenant listing = %v, %v", names, err)
	}
	// In the keystore, the tenant's key has a name no KES key can have.
	if _, err := os.Stat(filepath.Join(cfg.Keystore.FS.Path, "keyraft.e.tenant-a.k")); err != nil {
		t.Fatalf("namespaced keystore entry: %v", err)
	}

	// The enclave admin is confined to its enclave.
	if _, err := apiKeyClient(t, addr, tenantAdmin, "").GenerateKey(ctx, "k", nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("enclave admin in the default enclave: %v", err)
	}
	if err := ta.CreateEnclave(ctx, "tenant-b", tenantAdmin.Identity()); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("enclave admin creating enclaves: %v", err)
	}

	// A tenant policy for MinIO, selected by the Kes-Enclave header.
	if err := ta.WritePolicy(ctx, "minio", []string{"/v1/key/generate/*", "/v1/key/decrypt/*"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ta.AssignPolicy(ctx, "minio", minio.Identity()); err != nil {
		t.Fatal(err)
	}
	mc := apiKeyClient(t, addr, minio, "tenant-a")
	if _, err := mc.GenerateKey(ctx, "k", nil); err != nil {
		t.Fatalf("minio in its enclave: %v", err)
	}
	if err := mc.DeleteKey(ctx, "k"); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("minio delete: %v", err)
	}
	if _, err := apiKeyClient(t, addr, minio, "").GenerateKey(ctx, "k", nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("minio without the enclave header: %v", err)
	}
	if err := ta.AssignPolicy(ctx, "missing", minio.Identity()); !errors.Is(err, client.ErrPolicyNotFound) {
		t.Fatalf("assign to a missing policy: %v", err)
	}
	if _, err := apiKeyClient(t, addr, admin, "nope").GenerateKey(ctx, "k", nil); !errors.Is(err, client.ErrEnclaveNotFound) {
		t.Fatalf("unknown enclave: %v", err)
	}
	if err := ta.DeleteIdentity(ctx, minio.Identity()); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.GenerateKey(ctx, "k", nil); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("minio after its identity was removed: %v", err)
	}

	list, err := root.ListEnclaves(ctx, "")
	if err != nil || len(list) != 2 {
		t.Fatalf("enclaves = %v, %v", list, err)
	}
	// Deleting the enclave deletes its keys from the keystore.
	if err := root.DeleteEnclave(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Keystore.FS.Path, "keyraft.e.tenant-a.k")); !os.IsNotExist(err) {
		t.Fatalf("tenant key left in the keystore: %v", err)
	}
	if _, err := ta.GenerateKey(ctx, "k", nil); !errors.Is(err, client.ErrEnclaveNotFound) && !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("deleted enclave: %v", err)
	}
	if _, err := root.GenerateKey(ctx, "k", nil); err != nil {
		t.Fatalf("default enclave's k after the tenant left: %v", err)
	}
}
