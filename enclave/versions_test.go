package enclave

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// TestKeyRotation: a rotation adds a version that generate uses; every
// older ciphertext still decrypts; HMACs stay the same unless a version is
// asked for; a follower serves the new version; an evicted record loads
// again with every version; retiring and rewrapping work; a delete takes
// every version's keystore entry.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	follower := newFollower(t, s, time.Now)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.Get(ctx, "k")
	_, ct1, err := s.GenerateKey(ctx, DefaultEnclave, "k", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	mac1, _ := s.HMAC(ctx, DefaultEnclave, "k", []byte("id"), 0)
	for want := 2; want <= 3; want++ {
		n, err := follower.RotateKey(ctx, DefaultEnclave, "k", admin)
		if err != nil || n != want {
			t.Fatalf("rotate = %d, %v; want version %d", n, err, want)
		}
	}
	if after, _ := st.Get(ctx, "k"); !bytes.Equal(after, stored) {
		t.Fatal("a rotation rewrote version 1's keystore entry")
	}
	for _, n := range []int{2, 3} {
		entry, _ := versionEntry(DefaultEnclave, "k", n)
		v, err := st.Get(ctx, entry)
		if err != nil {
			t.Fatalf("version %d entry: %v", n, err)
		}
		if _, err := crypto.ParseKeyVersion(v); err != nil {
			t.Fatalf("version %d is not a KES key value: %v", n, err)
		}
	}
	dek, ct3, err := follower.GenerateKey(ctx, DefaultEnclave, "k", []byte("ctx"))
	if err != nil || crypto.CiphertextVersion(ct3) != 3 {
		t.Fatalf("generate after rotating twice: version %d, %v", crypto.CiphertextVersion(ct3), err)
	}
	for _, svc := range []*Service{s, follower} {
		if pt, err := svc.Decrypt(ctx, DefaultEnclave, "k", ct3, []byte("ctx")); err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("decrypt v3: %v", err)
		}
		if _, err := svc.Decrypt(ctx, DefaultEnclave, "k", ct1, []byte("ctx")); err != nil {
			t.Fatalf("decrypt v1 after rotating: %v", err)
		}
	}
	if mac, _ := follower.HMAC(ctx, DefaultEnclave, "k", []byte("id"), 0); !bytes.Equal(mac, mac1) {
		t.Fatal("the HMAC changed with a rotation")
	}
	if mac, err := s.HMAC(ctx, DefaultEnclave, "k", []byte("id"), 3); err != nil || bytes.Equal(mac, mac1) {
		t.Fatalf("version 3's HMAC = same as version 1's, %v", err)
	}
	if _, err := s.HMAC(ctx, DefaultEnclave, "k", []byte("id"), 4); !errors.Is(err, errNoSuchVersion) {
		t.Fatalf("HMAC of a missing version: %v", err)
	}
	info, err := follower.DescribeKey(ctx, DefaultEnclave, "k")
	if err != nil || len(info.Versions) != 3 || info.Versions[2].Version != 3 || info.Versions[2].CreatedBy != admin {
		t.Fatalf("describe = %+v, %v", info, err)
	}

	// Evicted (a cache decision), the key loads with every version.
	if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: DefaultEnclave, Names: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	if pt, err := follower.Decrypt(ctx, DefaultEnclave, "k", ct3, []byte("ctx")); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("decrypt v3 after an eviction: %v", err)
	}

	// Rewrap moves a v1 ciphertext to v3; retiring v1 and v2 then refuses
	// the old ciphertext but not the rewrapped one; and back.
	re, err := follower.Rewrap(ctx, DefaultEnclave, "k", ct1, []byte("ctx"))
	if err != nil || crypto.CiphertextVersion(re) != 3 {
		t.Fatalf("rewrap: version %d, %v", crypto.CiphertextVersion(re), err)
	}
	if err := follower.SetMinVersion(ctx, DefaultEnclave, "k", 3, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Decrypt(ctx, DefaultEnclave, "k", ct1, []byte("ctx")); !errors.Is(err, errVersionRetired) {
		t.Fatalf("decrypt of a retired version: %v", err)
	}
	if _, err := follower.Decrypt(ctx, DefaultEnclave, "k", re, []byte("ctx")); err != nil {
		t.Fatalf("decrypt of the rewrapped ciphertext: %v", err)
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 4, admin); !errors.Is(err, errNoSuchVersion) {
		t.Fatalf("min version 4: %v", err)
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 1, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Decrypt(ctx, DefaultEnclave, "k", ct1, []byte("ctx")); err != nil {
		t.Fatalf("decrypt after the retirement was undone: %v", err)
	}

	// Destroying a version: only once retired, never version 1, for good.
	if _, err := s.Encrypt(ctx, DefaultEnclave, "k", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVersion(ctx, DefaultEnclave, "k", 2, admin); !errors.Is(err, errVersionNotRetired) {
		t.Fatalf("destroy a version in use: %v", err)
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 3, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVersion(ctx, DefaultEnclave, "k", 1, admin); err == nil {
		t.Fatal("destroyed version 1")
	}
	if err := follower.DestroyVersion(ctx, DefaultEnclave, "k", 2, admin); err != nil {
		t.Fatal(err)
	}
	v2entry, _ := versionEntry(DefaultEnclave, "k", 2)
	if _, err := st.Get(ctx, v2entry); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a destroyed version's entry: %v", err)
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 1, admin); !errors.Is(err, errVersionDestroyed) {
		t.Fatalf("re-enable a destroyed version: %v", err)
	}
	if err := s.DestroyVersion(ctx, DefaultEnclave, "k", 2, admin); !errors.Is(err, errNoSuchVersion) {
		t.Fatalf("destroy twice: %v", err)
	}
	// Evicted and loaded again, the key has every version but the
	// destroyed one.
	if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: DefaultEnclave, Names: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	if pt, err := follower.Decrypt(ctx, DefaultEnclave, "k", ct3, []byte("ctx")); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("decrypt v3 after destroying v2 and an eviction: %v", err)
	}
	if info, _ := follower.DescribeKey(ctx, DefaultEnclave, "k"); !info.Versions[1].Destroyed || info.Versions[2].Destroyed {
		t.Fatalf("describe after destroying v2: %+v", info.Versions)
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 3, admin); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		entry, _ := versionEntry(DefaultEnclave, "k", n)
		if _, err := st.Get(ctx, entry); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("version %d's entry after the delete: %v", n, err)
		}
	}
	if _, ok := f.KeyVersions(DefaultEnclave, "k"); ok {
		t.Fatal("registered versions outlived the delete")
	}
	if names, _, _ := s.ListKeys(ctx, DefaultEnclave, "", ""); len(names) != 0 {
		t.Fatalf("listing after the delete: %q", names)
	}
	if _, err := s.RotateKey(ctx, DefaultEnclave, "k", admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("rotate a deleted key: %v", err)
	}
}

// TestNeverRotatedKeyUnchanged: a key never rotated keeps KES's stored
// value and ciphertext format, and its record the plain value.
func TestNeverRotatedKeyUnchanged(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "plain", admin); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.Get(ctx, "plain")
	kv, err := crypto.ParseKeyVersion(stored)
	if err != nil {
		t.Fatal(err)
	}
	dek, ct, err := s.GenerateKey(ctx, DefaultEnclave, "plain", nil)
	if err != nil || len(ct) != 76 {
		t.Fatalf("ciphertext of %d bytes, %v; want KES's 76", len(ct), err)
	}
	if pt, err := kv.Decrypt(ct, nil); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("KES's key cannot decrypt: %v", err)
	}
	rec, _ := f.Key(DefaultEnclave, "plain")
	plain, err := s.openRecord(ctx, DefaultEnclave, rec)
	if err != nil || !bytes.Equal(plain, stored) || len(rec.Versions) != 0 {
		t.Fatalf("record of a never-rotated key holds %d bytes (versions %v), %v; want the stored value", len(plain), rec.Versions, err)
	}
	info, _ := s.DescribeKey(ctx, DefaultEnclave, "plain")
	if len(info.Versions) != 1 || info.MinVersion != 0 {
		t.Fatalf("describe of a never-rotated key: %+v", info)
	}
}

// TestRestoreBeforeRotation: a backup taken before a key was rotated is
// restored; the reconciliation finds the versions in the keystore, so
// ciphertexts of every version still decrypt.
func TestRestoreBeforeRotation(t *testing.T) {
	ctx := context.Background()
	s, _, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	backup := snapshotBytes(t, f)
	for range 3 {
		if _, err := s.RotateKey(ctx, DefaultEnclave, "k", admin); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMinVersion(ctx, DefaultEnclave, "k", 3, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVersion(ctx, DefaultEnclave, "k", 2, admin); err != nil {
		t.Fatal(err)
	}
	dek, ct4, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil)
	if err != nil || crypto.CiphertextVersion(ct4) != 4 {
		t.Fatal(err)
	}
	restoreLocal(t, f, backup)
	if err := s.ReconcileRestored(ctx); err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Decrypt(ctx, DefaultEnclave, "k", ct4, nil); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("decrypt of a version-4 ciphertext after restoring an older backup: %v", err)
	}
	info, err := s.DescribeKey(ctx, DefaultEnclave, "k")
	if err != nil || len(info.Versions) != 4 || !info.Versions[1].Destroyed || info.Versions[3].Destroyed || info.MinVersion != 3 {
		t.Fatalf("versions after the restore: %+v, %v", info.Versions, err)
	}
	if v, ok := f.KeyVersions(DefaultEnclave, "k"); !ok || len(v.Versions) != 3 {
		t.Fatalf("registry after the restore: %+v", v)
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err != nil {
		t.Fatal(err)
	}
}

// TestKeyDeletedBehindTheClusterIsCreatedAgain: a rotated key whose entry
// is deleted in the keystore (by an operator, or KES) and is then created
// again through Keyraft is a new key: version 1 only, and its first
// rotation writes a new version 2 instead of adopting the old one.
func TestKeyDeletedBehindTheClusterIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	v2, _ := versionEntry(DefaultEnclave, "k", 2)
	old, _ := st.Get(ctx, v2)
	if err := st.Delete(ctx, "k"); err != nil { // behind the cluster's back
		t.Fatal(err)
	}
	if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: DefaultEnclave, Names: []string{"k"}}); err != nil { // as revalidation would
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatalf("create again: %v", err)
	}
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "k"); len(info.Versions) != 1 {
		t.Fatalf("a new key has %d versions", len(info.Versions))
	}
	if _, ok := f.KeyVersions(DefaultEnclave, "k"); ok {
		t.Fatal("the deleted key's versions are still registered")
	}
	if n, err := s.RotateKey(ctx, DefaultEnclave, "k", admin); err != nil || n != 2 {
		t.Fatalf("rotate the new key: %d, %v", n, err)
	}
	if cur, _ := st.Get(ctx, v2); bytes.Equal(cur, old) {
		t.Fatal("the new key adopted the deleted key's version 2")
	}
}
