package server

import (
	"bytes"
	"context"
	"testing"
)

func TestSnapshotSaveRestore(t *testing.T) {
	ctx := context.Background()
	cfg, key, err := DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startNode(t, cfg)
	defer s.Close()
	c := adminClient(t, s, key)
	if err := c.CreateKey(ctx, "in-backup"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.SaveSnapshot(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateKey(ctx, "after-backup"); err != nil {
		t.Fatal(err)
	}
	digestAfter := s.FSM().Digest()
	if err := c.RestoreSnapshot(ctx, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if s.FSM().Digest() == digestAfter {
		t.Fatal("restore did not change the state")
	}
	if _, ok := s.FSM().Key("default", "after-backup"); ok {
		t.Fatal("key cached after the backup survived the restore")
	}
	// The key is still in the keystore, the durable root: it loads again.
	if _, err := c.DescribeKey(ctx, "after-backup"); err != nil {
		t.Fatalf("key created after the backup: %v", err)
	}
	if _, err := c.DescribeKey(ctx, "in-backup"); err != nil {
		t.Fatal(err)
	}
}
