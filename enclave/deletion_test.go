package enclave

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRecoveryWindow: with a window, a delete hides the key at once,
// keeps its name reserved and its keystore entry; a restore brings the
// same material back; the leader purges it when the window ends.
func TestRecoveryWindow(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	clock := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s.now = clock.now
	s.cfg.RecoveryWindow = 7 * 24 * time.Hour
	var audited []string
	s.cfg.Audit = func(enclave, path, identity string) { audited = append(audited, enclave+" "+path+" "+identity) }

	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	dek, ct, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	dek2, ct2, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2entry, _ := versionEntry(DefaultEnclave, "k", 2)
	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(ctx, DefaultEnclave, "k", ct, nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("decrypt under a deleted key: %v", err)
	}
	if _, err := s.DescribeKey(ctx, DefaultEnclave, "k"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("describe a deleted key: %v", err)
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); !errors.Is(err, kes.ErrKeyExists) {
		t.Fatalf("create of a pending deletion's name: %v", err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if names, _, err := s.ListKeys(ctx, DefaultEnclave, "", ""); err != nil || len(names) != 0 {
		t.Fatalf("listing shows %q (%v), want nothing", names, err)
	}
	if _, err := st.Get(ctx, "k"); err != nil {
		t.Fatalf("the keystore entry is gone within the window: %v", err)
	}
	list, err := s.DeletedKeys(DefaultEnclave, "")
	if err != nil || len(list) != 1 || list[0].Name != "k" || !list[0].PurgeAt.Equal(clock.now().Add(s.cfg.RecoveryWindow)) {
		t.Fatalf("DeletedKeys = %+v %v", list, err)
	}

	if err := s.RestoreKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Decrypt(ctx, DefaultEnclave, "k", ct, nil); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("decrypt after restore: %v", err)
	}
	if pt, err := s.Decrypt(ctx, DefaultEnclave, "k", ct2, nil); err != nil || !bytes.Equal(pt, dek2) {
		t.Fatalf("decrypt of a version-2 ciphertext after restore: %v", err)
	}
	if err := s.RestoreKey(ctx, DefaultEnclave, "k", admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("restore of a live key: %v", err)
	}

	// Deleted again, it is purged only once the window has passed.
	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	clock.add(s.cfg.RecoveryWindow - time.Second)
	s.purgeDue(ctx)
	if _, err := st.Get(ctx, "k"); err != nil {
		t.Fatalf("purged before the window ended: %v", err)
	}
	clock.add(time.Second)
	s.purgeDue(ctx)
	if _, err := st.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("keystore entry after the window: %v", err)
	}
	if _, err := st.Get(ctx, v2entry); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("version 2's keystore entry after the window: %v", err)
	}
	if _, ok := f.Deleted(DefaultEnclave, "k"); ok {
		t.Fatal("deletion still pending after the purge")
	}
	if want := "default /v1/key/purge/k " + PurgeIdentity; len(audited) != 1 || audited[0] != want {
		t.Fatalf("audited %q, want [%q]", audited, want)
	}
	if err := s.RestoreKey(ctx, DefaultEnclave, "k", admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("restore after the purge: %v", err)
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatalf("the name is free after the purge: %v", err)
	}
}

// TestRecoveryWindowEnclaves: inside an enclave too; an enclave holding
// keys or pending deletions cannot be deleted while a window is set; an
// explicit purge frees it.
func TestRecoveryWindowEnclaves(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	s.cfg.RecoveryWindow = time.Hour
	if err := s.CreateEnclave(ctx, "t", admin, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, "t", "k", admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnclave(ctx, "t", admin); !errors.Is(err, errEnclaveNotEmpty) {
		t.Fatalf("delete of an enclave with a key: %v", err)
	}
	if err := s.DeleteKey(ctx, "t", "k", admin); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.DeletedKeys(DefaultEnclave, ""); len(list) != 0 {
		t.Fatalf("another enclave's deletion shows in the default one: %+v", list)
	}
	if err := s.DeleteEnclave(ctx, "t", admin); !errors.Is(err, errEnclaveHasDeletions) {
		t.Fatalf("delete of an enclave with a pending deletion: %v", err)
	}
	if err := s.PurgeKey(ctx, "t", "k", admin); err != nil {
		t.Fatal(err)
	}
	if names, _ := st.List(ctx, ""); len(names) != 1 { // only the seal key
		t.Fatalf("keystore after the purge: %q", names)
	}
	if err := s.DeleteEnclave(ctx, "t", admin); err != nil {
		t.Fatalf("delete of the emptied enclave: %v", err)
	}
}

// TestRecoveryWindowOff: with no window a delete is KES's: the keystore
// entry goes at once and the name is free.
func TestRecoveryWindowOff(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("keystore entry after a delete without window: %v", err)
	}
	if len(f.Deletions(DefaultEnclave)) != 0 {
		t.Fatal("a delete without window left a pending deletion")
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
}
