package systemtest

import (
	"errors"
	"testing"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/kes"
)

// TestDeletionProtectionOnEveryNode: a key created under a
// protection.deletion pattern cannot be deleted through any node until an
// admin removes the protection.
func TestDeletionProtectionOnEveryNode(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.protectDeletion = []string{"minio-*"}
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)
	if err := c.client("n2").CreateKey(bg, "minio-bucket"); err != nil {
		t.Fatal(err)
	}
	assertConverged(t, c)
	for _, id := range nodeIDs {
		info, err := c.client(id).DescribeKey(bg, "minio-bucket")
		if err != nil || !info.Protected {
			t.Fatalf("describe on %s = %+v, %v; want protected", id, info, err)
		}
		err = c.client(id).DeleteKey(bg, "minio-bucket")
		var ke kes.Error
		if !errors.As(err, &ke) || ke.Code != 409 || ke.Message != "key is protected from deletion" {
			t.Fatalf("delete through %s: %v, want 409 key is protected from deletion", id, err)
		}
	}
	if err := c.client("n3").SetKeyProtection(bg, "minio-bucket", false); err != nil {
		t.Fatal(err)
	}
	if err := c.client("n1").DeleteKey(bg, "minio-bucket"); err != nil {
		t.Fatalf("delete after the protection was removed: %v", err)
	}
	for _, id := range nodeIDs {
		if _, err := c.client(id).DescribeKey(bg, "minio-bucket"); !errors.Is(err, client.ErrKeyNotFound) {
			t.Fatalf("describe on %s after the delete: %v", id, err)
		}
	}
}
