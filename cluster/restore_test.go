package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/testutil"
)

func startRestoreNode(t *testing.T, dir string, ln net.Listener, cert tls.Certificate, id string) (*Node, *fsm.FSM) {
	t.Helper()
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(Config{
		ID: "n1", DataDir: dir, Listener: ln, Bootstrap: true, FSM: f,
		TLS:               &tls.Config{Certificates: []tls.Certificate{cert}},
		Authorize:         func(got string) bool { return got == id },
		SnapshotThreshold: 8,
	})
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n, f
}

// backupImage is a snapshot of a cluster with the same seal key that did
// many more writes: its applied index (600) is far above the restoring
// node's Raft index.
func backupImage(t *testing.T) []byte {
	t.Helper()
	b, err := fsm.Open(filepath.Join(t.TempDir(), "backup.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cmds := []fsm.Command{
		fsm.SetSeal{Seal: fsm.SealRecord{ID: "seal-1", Check: []byte("b")}},
		fsm.PutMember{Member: fsm.Member{ID: "gone", RaftAddr: "10.9.9.9:1", Identity: "gone-id"}},
		fsm.PutPolicy{Enclave: "default", Policy: fsm.PolicyRecord{Name: "from-backup"}},
	}
	for i, c := range cmds {
		apply(t, b, uint64(i+1), c)
	}
	apply(t, b, 600, fsm.PutKey{Enclave: "default", Key: fsm.KeyRecord{Name: "k", Algorithm: "AES256", Sealed: []byte("s")}})
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t *testing.T, f *fsm.FSM, index uint64, c fsm.Command) {
	t.Helper()
	b, err := fsm.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, fatal := f.Apply(index, b); fatal != nil {
		t.Fatal(fatal)
	}
}

// TestRestoreOlderSnapshotKeepsApplyingWrites restores a snapshot whose
// applied index is far above the node's Raft index: every write after it
// must be applied, before and after a restart (which restores Raft's
// latest snapshot and replays the log after it), and the restore must not
// change membership.
func TestRestoreOlderSnapshotKeepsApplyingWrites(t *testing.T) {
	dir := t.TempDir()
	cert, id := newCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	n, f := startRestoreNode(t, dir, ln, cert, id)
	ctx := context.Background()
	for _, c := range []fsm.Command{
		fsm.SetSeal{Seal: fsm.SealRecord{ID: "seal-1", Check: []byte("live")}},
		fsm.PutMember{Member: fsm.Member{ID: "n1", RaftAddr: addr, Identity: id}},
	} {
		if _, err := n.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	servers, _ := n.Servers()
	members := f.Members()

	if err := n.RestoreSnapshot(ctx, []byte("garbage")); !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Fatalf("bad snapshot: %v", err)
	}
	if err := n.RestoreSnapshot(ctx, backupImage(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Policy("default", "from-backup"); !ok {
		t.Fatal("backup not installed")
	}
	if f.AppliedIndex() >= 600 {
		t.Fatalf("applied index %d taken from the backup", f.AppliedIndex())
	}
	if _, ok := f.RestorePending(); !ok {
		t.Fatal("restored keys not marked for reconciliation")
	}
	restoredAt := n.raft.Stats()["last_snapshot_index"]

	// write applies a policy and checks that it was applied.
	write := func(name string) {
		t.Helper()
		if _, err := n.Apply(ctx, fsm.PutPolicy{Enclave: "default", Policy: fsm.PolicyRecord{Name: name}}); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Policy("default", name); !ok {
			t.Fatalf("write %s acknowledged but not applied", name)
		}
	}
	// restart stops the node and starts it again on its data; the state
	// must come back as it was.
	restart := func() {
		t.Helper()
		digest := f.Digest()
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		n, f = startRestoreNode(t, dir, ln, cert, id)
		testutil.Eventually(t, 10*time.Second, "state after the restart equals the state before", func() bool {
			return f.Digest() == digest
		})
	}
	defer func() { n.Shutdown(); f.Close() }()

	for i := range 3 {
		write(fmt.Sprintf("after-%d", i))
	}
	// Restart on the restored snapshot plus the log after it.
	restart()
	if got := n.raft.Stats()["last_snapshot_index"]; got != restoredAt {
		t.Fatalf("test premise: Raft snapshotted already (%s, restore at %s)", got, restoredAt)
	}
	write("after-first-restart")
	// More writes than the snapshot threshold: Raft snapshots the restored
	// state on its own; restart on that snapshot.
	for i := range 12 {
		write(fmt.Sprintf("more-%d", i))
	}
	testutil.Eventually(t, 10*time.Second, "Raft snapshots the state after the restore", func() bool {
		return n.raft.Stats()["last_snapshot_index"] != restoredAt
	})
	restart()
	write("after-second-restart")
	if got, _ := n.Servers(); !reflect.DeepEqual(got, servers) {
		t.Fatalf("Raft servers %v, before the restore %v", got, servers)
	}
	if got := f.Members(); !reflect.DeepEqual(got, members) {
		t.Fatalf("members %v, before the restore %v", got, members)
	}
}
