package enclave

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store"
)

// restoreLocal does what a cluster restore does on a one-node cluster:
// prepare the backup against the live state and install it.
func restoreLocal(t *testing.T, f *fsm.FSM, backup []byte) {
	t.Helper()
	image, err := fsm.PrepareRestore(f, backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
}

func snapshotBytes(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
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

func TestRestoredKeysAreReconciledBeforeServed(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	for _, name := range []string{"kept", "deleted", "recreated"} {
		if err := s.CreateKey(ctx, DefaultEnclave, name, admin); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GenerateKey(ctx, DefaultEnclave, name, nil); err != nil { // cache it unsealed
			t.Fatal(err)
		}
	}
	_, keptCT, err := s.GenerateKey(ctx, DefaultEnclave, "kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	backup := snapshotBytes(t, f)
	for _, name := range []string{"deleted", "recreated"} {
		if err := s.DeleteKey(ctx, DefaultEnclave, name, admin); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "recreated", admin); err != nil {
		t.Fatal(err)
	}
	dek, newCT, err := s.GenerateKey(ctx, DefaultEnclave, "recreated", nil)
	if err != nil {
		t.Fatal(err)
	}

	restoreLocal(t, f, backup)

	// Until the reconciliation is applied, no restored key is served: a
	// request waits briefly, then answers 503.
	start := time.Now()
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "deleted", nil); !errors.Is(err, errReconciling) {
		t.Fatalf("generate under a restored key before reconciliation: %v", err)
	}
	if waited := time.Since(start); waited < reconcileWait/2 {
		t.Fatalf("answered after %v without waiting for the reconciliation", waited)
	}
	if _, err := s.DescribeKey(ctx, DefaultEnclave, "kept"); !errors.Is(err, errReconciling) {
		t.Fatalf("describe of a restored key before reconciliation: %v", err)
	}
	// A key the backup does not hold is loaded and served at once.
	if err := st.Create(ctx, "outside", mustKeyValue(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "outside", nil); err != nil {
		t.Fatalf("key outside the backup: %v", err)
	}

	// A request that arrives during the reconciliation gets its answer
	// once the reconciliation is applied.
	waiter := make(chan error, 1)
	go func() {
		_, err := s.Decrypt(ctx, DefaultEnclave, "recreated", newCT, nil)
		waiter <- err
	}()
	st.ResetCalls()
	if err := s.ReconcileRestored(ctx); err != nil {
		t.Fatal(err)
	}
	// Only the key whose keystore version changed since the backup
	// ("recreated") is read; "kept" is confirmed by its listed version.
	if c := st.Calls(); c.List != 1 || c.Get != 1 {
		t.Fatalf("keystore calls of the reconciliation = %+v, want one listing and one read (the re-created key)", c)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("request waiting for the reconciliation: %v", err)
	}
	if _, ok := f.RestorePending(); ok {
		t.Fatal("restore still pending")
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "deleted", nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("key deleted after the backup: %v", err)
	}
	if pt, err := s.Decrypt(ctx, DefaultEnclave, "recreated", newCT, nil); err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("re-created key does not serve its new material: %v", err)
	}
	if _, err := s.Decrypt(ctx, DefaultEnclave, "kept", keptCT, nil); err != nil {
		t.Fatalf("unchanged key: %v", err)
	}
	if err := s.ReconcileRestored(ctx); err != nil {
		t.Fatalf("second reconcile: %v", err)
	}
}

func TestReconcileWaitsForTheKeystore(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	restoreLocal(t, f, snapshotBytes(t, f))
	s.cfg.Store = downStore{st}
	if err := s.ReconcileRestored(ctx); !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("reconcile with the keystore down: %v", err)
	}
	if _, ok := f.RestorePending(); !ok {
		t.Fatal("a failed reconciliation ended the restore")
	}
	s.cfg.Store = st
	s.cfg.Proposer.(*localProposer).leader = false
	if err := s.ReconcileRestored(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("reconcile on a follower: %v", err)
	}
	s.cfg.Proposer.(*localProposer).leader = true
	if err := s.ReconcileRestored(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DescribeKey(ctx, DefaultEnclave, "k"); err != nil {
		t.Fatal(err)
	}
}

// switchProposer is a localProposer whose leadership a test switches while
// the service's background loops run.
type switchProposer struct {
	*localProposer
	leads atomic.Bool
}

func (p *switchProposer) IsLeader() bool { return p.leads.Load() }

// TestReconcilerFinishesOnANewLeader: a restore left pending (its leader
// went away before reconciling) is reconciled by whichever node leads next.
func TestReconcilerFinishesOnANewLeader(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	backup := snapshotBytes(t, f)
	if err := s.DeleteKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	restoreLocal(t, f, backup)

	// Another node of the same cluster: it follows first, then leads.
	p := &switchProposer{localProposer: s.cfg.Proposer.(*localProposer)}
	next, err := New(Config{FSM: f, Store: st, Proposer: p, Admin: admin, Cache: CacheConfig{HealthInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if err := next.Unseal(ctx, nil); err != nil {
		t.Fatal(err)
	}
	next.Start()
	if err := next.ReconcileRestored(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("reconcile on a follower: %v", err)
	}
	if _, ok := f.RestorePending(); !ok {
		t.Fatal("a follower reconciled")
	}
	p.leads.Store(true)
	testutil.Eventually(t, 10*time.Second, "the new leader reconciles the restore", func() bool {
		_, pending := f.RestorePending()
		return !pending
	})
	if _, ok := f.Key(DefaultEnclave, "k"); ok {
		t.Fatal("key deleted after the backup survived the reconciliation")
	}
}

func mustKeyValue(t *testing.T) []byte {
	t.Helper()
	s, st, _ := newTestService(t)
	if err := s.CreateKey(context.Background(), DefaultEnclave, "x", admin); err != nil {
		t.Fatal(err)
	}
	v, err := st.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// downStore fails listings and reads as an unreachable keystore does.
type downStore struct{ store.Store }

func (downStore) List(context.Context, string) ([]string, error) { return nil, store.ErrUnreachable }
func (downStore) Get(context.Context, string) ([]byte, error)    { return nil, store.ErrUnreachable }
