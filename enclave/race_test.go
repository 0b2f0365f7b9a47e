package enclave

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store/mem"
)

// holders returns how many goroutines hold or wait for an enclave's lock.
func (l *enclaveLocks) holders(enclave string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.m[enclave]; e != nil {
		return e.refs
	}
	return 0
}

// hookProposer runs a hook before each command; a non-nil error from it is
// returned instead of applying the command.
type hookProposer struct {
	*localProposer
	before func(fsm.Command) error
}

func (p *hookProposer) Apply(ctx context.Context, cmd fsm.Command) (uint64, error) {
	if err := p.before(cmd); err != nil {
		return 0, err
	}
	return p.localProposer.Apply(ctx, cmd)
}

// namespaceEntries lists the keystore entries of an enclave's namespace.
func namespaceEntries(t *testing.T, st *mem.Store, enclave string) []string {
	t.Helper()
	names, err := st.List(context.Background(), "keyraft.e."+enclave+".")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestEnclaveDeleteWaitsForKeyCreate pins the interleaving of the race:
// a create is between its keystore write and its apply when the enclave
// is deleted. The delete must wait for it and then delete the key.
func TestEnclaveDeleteWaitsForKeyCreate(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateEnclave(ctx, "r", admin, admin); err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	var lists atomic.Int32
	st.SetHook(func(_ context.Context, op mem.Op, name string) error {
		switch {
		case op == mem.OpCreate && name == "keyraft.e.r.k1":
			close(reached)
			<-release
		case op == mem.OpList && strings.HasPrefix(name, "keyraft.e.r."):
			lists.Add(1)
		}
		return nil
	})
	created := make(chan error, 1)
	go func() { created <- s.CreateKey(ctx, "r", "k1", admin) }()
	<-reached
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteEnclave(ctx, "r", admin) }()
	testutil.Eventually(t, 5*time.Second, "the delete waits for the enclave's lock", func() bool {
		return s.locks.holders("r") == 2
	})
	if n := lists.Load(); n != 0 {
		t.Fatalf("the delete listed the keystore %d times while a create was in flight", n)
	}
	close(release)
	if err := <-created; err != nil {
		t.Fatalf("create that held the lock first: %v", err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	st.SetHook(nil)
	if left := namespaceEntries(t, st, "r"); len(left) != 0 {
		t.Fatalf("acknowledged key survived its enclave: %v", left)
	}
	if _, ok := f.Key("r", "k1"); ok {
		t.Fatal("FSM kept the key of a deleted enclave")
	}
	if err := s.CreateEnclave(ctx, "r", admin, admin); err != nil {
		t.Fatal(err)
	}
	if names, _, err := s.ListKeys(ctx, "r", "", ""); err != nil || len(names) != 0 {
		t.Fatalf("re-created enclave lists %v, %v", names, err)
	}
	if s.locks.holders("r") != 0 {
		t.Fatal("lock entries leak")
	}
}

// TestKeyLoadDoesNotCrossEnclaveGenerations: a key load that read the
// keystore before its enclave was deleted cannot replicate the old value
// into a re-created enclave of the same name.
func TestKeyLoadDoesNotCrossEnclaveGenerations(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateEnclave(ctx, "l", admin, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, "l", "k", admin); err != nil {
		t.Fatal(err)
	}
	// Evicted from the cache: the next use loads it from the keystore.
	if _, err := s.propose(ctx, fsm.RemoveKeys{Enclave: "l", Names: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	st.SetHook(func(_ context.Context, op mem.Op, name string) error {
		if op == mem.OpGet && name == "keyraft.e.l.k" {
			close(reached)
			<-release
		}
		return nil
	})
	loaded := make(chan error, 1)
	go func() {
		_, err := s.DescribeKey(ctx, "l", "k")
		loaded <- err
	}()
	<-reached
	recreated := make(chan error, 1)
	go func() {
		if err := s.DeleteEnclave(ctx, "l", admin); err != nil {
			recreated <- err
			return
		}
		recreated <- s.CreateEnclave(ctx, "l", admin, admin)
	}()
	testutil.Eventually(t, 5*time.Second, "the delete waits for the load", func() bool {
		return s.locks.holders("l") == 2
	})
	close(release)
	// The load completes; by the time it reads its own result back the
	// enclave may already be deleted (and re-created).
	loadErr := <-loaded
	if err := <-recreated; err != nil {
		t.Fatal(err)
	}
	if loadErr != nil && !errors.Is(loadErr, kes.ErrKeyNotFound) && !errors.Is(loadErr, kes.ErrEnclaveNotFound) {
		t.Fatalf("load that held the lock first: %v", loadErr)
	}
	st.SetHook(nil)
	if _, ok := f.Key("l", "k"); ok {
		t.Fatal("the old enclave's key is cached in the re-created enclave")
	}
	if _, err := s.DescribeKey(ctx, "l", "k"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("old key in the re-created enclave: %v", err)
	}
}

// TestEnclaveDeleteRacesCreates runs creates concurrently with deleting and
// re-creating their enclave, several times. Every create acknowledged
// before the delete returned must be gone after it, and the re-created
// enclave must start empty.
func TestEnclaveDeleteRacesCreates(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	follower := newFollower(t, s, time.Now)
	if err := s.CreateEnclave(ctx, "race", admin, admin); err != nil {
		t.Fatal(err)
	}
	const runs, workers = 20, 8
	survivors := 0
	for run := range runs {
		var (
			mu    sync.Mutex
			acked []string
			stop  atomic.Bool
			wg    sync.WaitGroup
		)
		for w := range workers {
			svc := s
			if w%2 == 1 {
				svc = follower // forwarded creates take the same path on the leader
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					name := fmt.Sprintf("k-%d-%d-%d", run, w, i)
					err := svc.CreateKey(ctx, "race", name, admin)
					switch {
					case err == nil:
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
					case errors.Is(err, kes.ErrEnclaveNotFound):
					default:
						t.Errorf("create %s: %v", name, err)
						return
					}
				}
			}()
		}
		testutil.Eventually(t, 5*time.Second, "creates are acknowledged", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 20
		})
		if err := s.DeleteEnclave(ctx, "race", admin); err != nil {
			t.Fatal(err)
		}
		stop.Store(true)
		wg.Wait()
		left := namespaceEntries(t, st, "race")
		survivors += len(left)
		for _, name := range acked {
			if _, ok := f.Key("race", name); ok {
				t.Errorf("run %d: FSM kept %s", run, name)
			}
		}
		if err := s.CreateEnclave(ctx, "race", admin, admin); err != nil {
			t.Fatal(err)
		}
		names, _, err := s.ListKeys(ctx, "race", "", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 || len(names) != 0 {
			t.Fatalf("run %d: %d keystore entries survived the delete (%d creates acknowledged); re-created enclave lists %d",
				run, len(left), len(acked), len(names))
		}
	}
	t.Logf("%d runs, %d surviving keys", runs, survivors)
}

// TestFailedCreateRemovesItsKeystoreEntry: when the apply of a create is
// rejected (the enclave was deleted by another leader first) the key the
// client was told does not exist is removed from the keystore; when the
// outcome is unknown (leadership lost: the next leader may still commit the
// record) the key material is kept, since deleting it could destroy data.
func TestFailedCreateRemovesItsKeystoreEntry(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	local := s.cfg.Proposer.(*localProposer)
	var fail func(fsm.Command) error
	s.cfg.Proposer = &hookProposer{localProposer: local, before: func(c fsm.Command) error {
		if fail != nil {
			return fail(c)
		}
		return nil
	}}
	if err := s.CreateEnclave(ctx, "g", admin, admin); err != nil {
		t.Fatal(err)
	}

	// Leadership lost before the apply.
	fail = func(c fsm.Command) error {
		if _, ok := c.(fsm.PutKey); ok {
			return fmt.Errorf("%w: leadership lost while committing log", ErrNotLeader)
		}
		return nil
	}
	if err := s.CreateKey(ctx, "g", "lost", admin); !errors.Is(err, errUnavailable) {
		t.Fatalf("create on a deposed leader: %v", err)
	}
	if left := namespaceEntries(t, st, "g"); len(left) != 1 {
		t.Fatalf("keystore entries after an unknown outcome = %v, want the key kept", left)
	}
	if err := s.DeleteKey(ctx, "g", "lost", admin); err != nil {
		t.Fatalf("delete the kept key: %v", err)
	}

	// Another leader deleted the enclave after this one checked it: the
	// apply fails deterministically.
	fail = func(c fsm.Command) error {
		if _, ok := c.(fsm.PutKey); ok {
			if _, err := local.Apply(ctx, fsm.DeleteEnclave{Name: "g"}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.ImportKey(ctx, "g", "late", make([]byte, 32), "AES256", admin); !errors.Is(err, kes.ErrEnclaveNotFound) {
		t.Fatalf("create in an enclave deleted meanwhile: %v", err)
	}
	if left := namespaceEntries(t, st, "g"); len(left) != 0 {
		t.Fatalf("keystore kept %v", left)
	}
	if _, ok := f.Key("g", "late"); ok {
		t.Fatal("FSM holds a key of a deleted enclave")
	}
	fail = nil

	// A policy write racing the same way cannot resurrect the enclave.
	if _, err := local.Apply(ctx, fsm.PutPolicy{Enclave: "g", Policy: fsm.PolicyRecord{Name: "p"}}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("policy put in a deleted enclave: %v", err)
	}
	if _, err := local.Apply(ctx, fsm.PutKey{Enclave: "g", Key: fsm.KeyRecord{Name: "x"}}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("key put in a deleted enclave: %v", err)
	}
}

// TestCreateEnclavePurgesLeftovers: entries in a new enclave's namespace
// (written by a leader that was deposed before it could apply or remove
// them) are deleted before the enclave exists; an existing enclave's keys
// are never touched by a create that fails.
func TestCreateEnclavePurgesLeftovers(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	for _, n := range []string{"keyraft.e.p.orphan", "keyraft.e.p.other"} {
		if err := st.Create(ctx, n, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateEnclave(ctx, "p", admin, admin); err != nil {
		t.Fatal(err)
	}
	if left := namespaceEntries(t, st, "p"); len(left) != 0 {
		t.Fatalf("leftovers in the new enclave: %v", left)
	}
	if _, err := s.DescribeKey(ctx, "p", "orphan"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("orphan in the new enclave: %v", err)
	}
	if err := s.CreateKey(ctx, "p", "k", admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnclave(ctx, "p", admin, admin); !errors.Is(err, kes.ErrEnclaveExists) {
		t.Fatalf("create twice: %v", err)
	}
	if left := namespaceEntries(t, st, "p"); len(left) != 1 {
		t.Fatalf("a refused create touched the existing enclave: %v", left)
	}
	if _, err := st.Get(ctx, SealName); err != nil {
		t.Fatalf("seal entry: %v", err)
	}
	// A keystore failure fails the create instead of skipping the purge.
	st.SetUnreachable(true)
	if err := s.CreateEnclave(ctx, "q", admin, admin); err == nil {
		t.Fatal("enclave created without purging its namespace")
	}
	st.SetUnreachable(false)
	if _, err := s.DescribeEnclave(ctx, "q"); !errors.Is(err, kes.ErrEnclaveNotFound) {
		t.Fatalf("enclave q: %v", err)
	}
}
