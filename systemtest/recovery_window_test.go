package systemtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestRecoveryWindowOnCluster: with protection.recovery_window set on
// three nodes, a delete hides the key on every node at once and keeps its
// name reserved; a restore brings it back on every node with every old
// ciphertext decrypting; a second delete is purged when the window ends,
// by whichever node leads then.
func TestRecoveryWindowOnCluster(t *testing.T) {
	const window = 6 * time.Second
	c := newTestCluster(t, "n1", "n2", "n3")
	c.recoveryWindow = window
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)

	if err := c.client("n2").CreateKey(bg, "rw-a"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.client("n3").GenerateKey(bg, "rw-a", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.client("n1").DeleteKey(bg, "rw-a"); err != nil {
		t.Fatal(err)
	}
	// At once, on every node: gone for clients, name reserved.
	for _, id := range nodeIDs {
		if _, err := c.client(id).Decrypt(bg, "rw-a", dek.Ciphertext, []byte("ctx")); !errors.Is(err, client.ErrKeyNotFound) {
			t.Fatalf("decrypt on %s right after the delete: %v, want key does not exist", id, err)
		}
		if err := c.client(id).CreateKey(bg, "rw-a"); !errors.Is(err, client.ErrKeyExists) {
			t.Fatalf("create of the pending deletion's name on %s: %v, want key already exists", id, err)
		}
	}
	list, err := c.client("n2").DeletedKeys(bg, "rw")
	if err != nil || len(list) != 1 || list[0].Name != "rw-a" || list[0].PurgeAt.Sub(list[0].DeletedAt) != window {
		t.Fatalf("deleted keys = %+v, %v", list, err)
	}
	entry := filepath.Join(c.keystore, "rw-a")
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("keystore entry within the window: %v", err)
	}

	if err := c.client("n3").RestoreKey(bg, "rw-a"); err != nil {
		t.Fatal(err)
	}
	for _, id := range nodeIDs {
		pt, err := c.client(id).Decrypt(bg, "rw-a", dek.Ciphertext, []byte("ctx"))
		if err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("decrypt on %s after the restore: %v", id, err)
		}
	}

	// Deleted again; the leader changes; the new leader purges it at the
	// end of the window, not before.
	if err := c.client("n2").DeleteKey(bg, "rw-a"); err != nil {
		t.Fatal(err)
	}
	list, err = c.client("n2").DeletedKeys(bg, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("deleted keys after the second delete = %+v, %v", list, err)
	}
	purgeAt := list[0].PurgeAt
	old := c.leader()
	c.stop(old)
	survivor := follower(c, old)
	newLeader := c.leader()
	t.Logf("leader %s stopped, %s leads", old, newLeader)
	if time.Until(purgeAt) > time.Second {
		if _, err := os.Stat(entry); err != nil {
			t.Fatalf("purged %v before the window ended: %v", time.Until(purgeAt), err)
		}
	}
	testutil.Eventually(t, window+20*time.Second, "purge at the end of the window", func() bool {
		l, err := c.client(survivor).DeletedKeys(bg, "")
		_, serr := os.Stat(entry)
		return err == nil && len(l) == 0 && errors.Is(serr, os.ErrNotExist)
	})
	if late := time.Since(purgeAt); late < 0 {
		t.Fatalf("purged %v early", -late)
	} else {
		t.Logf("purged %v after the window ended, by %s", late.Round(time.Millisecond), newLeader)
	}
	if err := c.client(survivor).RestoreKey(bg, "rw-a"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("restore after the purge: %v", err)
	}
	if err := c.client(survivor).CreateKey(bg, "rw-a"); err != nil {
		t.Fatalf("create after the purge: %v", err)
	}
}
