package enclave

import (
	"context"
	"errors"
	"testing"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

func TestDeletionProtection(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	s.cfg.ProtectDeletion = []string{"minio-*"}
	for _, n := range []string{"minio-bucket", "scratch"} {
		if err := s.CreateKey(ctx, DefaultEnclave, n, admin); err != nil {
			t.Fatal(err)
		}
	}
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "minio-bucket"); !info.Protected {
		t.Fatal("a key created under a protection.deletion pattern is not protected")
	}
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "scratch"); info.Protected {
		t.Fatal("a key outside the patterns is protected")
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "minio-bucket", admin); !errors.Is(err, errKeyProtected) {
		t.Fatalf("delete of a protected key: %v", err)
	}
	if _, err := st.Get(ctx, "minio-bucket"); err != nil {
		t.Fatalf("the refused delete touched the keystore: %v", err)
	}
	// Evicting the sealed record (a cache decision) keeps the protection.
	if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: DefaultEnclave, Names: []string{"minio-bucket"}}); err != nil {
		t.Fatal(err)
	}
	if !s.KeyProtected(DefaultEnclave, "minio-bucket") {
		t.Fatal("evicting the sealed record dropped the protection")
	}
	// Policies cannot grant it: only admins protect and unprotect.
	if err := s.SetKeyProtection(ctx, DefaultEnclave, "minio-bucket", false, "someone-else"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("unprotect by a non-admin: %v", err)
	}
	if err := s.SetKeyProtection(ctx, DefaultEnclave, "missing", true, admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("protect a missing key: %v", err)
	}
	if err := s.SetKeyProtection(ctx, DefaultEnclave, "minio-bucket", false, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "minio-bucket", admin); err != nil {
		t.Fatalf("delete after the protection was removed: %v", err)
	}
	if err := s.SetKeyProtection(ctx, DefaultEnclave, "scratch", true, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "scratch", admin); !errors.Is(err, errKeyProtected) {
		t.Fatalf("delete of a key an admin protected: %v", err)
	}

	// An enclave with a protected key cannot be deleted; its own admin
	// may remove the protection.
	const tenant = "tenant-admin-identity"
	if err := s.CreateEnclave(ctx, "t", tenant, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, "t", "minio-x", tenant); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnclave(ctx, "t", admin); !errors.Is(err, errEnclaveProtected) {
		t.Fatalf("delete of an enclave with a protected key: %v", err)
	}
	if _, ok := f.Key("t", "minio-x"); !ok {
		t.Fatal("the refused enclave delete removed its key")
	}
	if err := s.SetKeyProtection(ctx, "t", "minio-x", false, tenant); err != nil {
		t.Fatalf("the enclave admin removes a protection: %v", err)
	}
	if err := s.DeleteEnclave(ctx, "t", admin); err != nil {
		t.Fatal(err)
	}
}
