package enclave

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store"
)

// waitRotated polls until no rotation is in progress and the seal key is
// no longer old's, and returns the new seal record.
func waitRotated(t *testing.T, f *fsm.FSM, old string) fsm.SealRecord {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "seal rotation finished", func() bool {
		_, rotating := f.SealNext()
		seal, _ := f.Seal()
		return !rotating && seal.ID != old
	})
	seal, _ := f.Seal()
	return seal
}

// TestSealRotation: a rotation started through a follower re-seals every
// record (more than one batch), old ciphertexts decrypt on both nodes
// before, during and after it, the old seal key leaves the keystore and
// the nodes, and a restarted node unseals with the new key.
func TestSealRotation(t *testing.T) {
	ctx := context.Background()
	leader, st, f := newTestService(t)
	follower := newFollower(t, leader, time.Now)
	const n = 2*resealBatch + 10
	cts := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("k-%03d", i)
		if err := leader.CreateKey(ctx, DefaultEnclave, name, admin); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			_, ct, err := follower.GenerateKey(ctx, DefaultEnclave, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			cts[name] = ct
		}
	}
	old, _ := f.Seal()
	st0, err := follower.RotateSeal(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if st0.ID != old.ID || st0.RotatingTo == "" {
		t.Fatalf("status after the start = %+v", st0)
	}
	decryptAll := func(s *Service) {
		t.Helper()
		for name, ct := range cts {
			if _, err := s.Decrypt(ctx, DefaultEnclave, name, ct, nil); err != nil {
				t.Fatalf("decrypt %s during/after the rotation: %v", name, err)
			}
		}
	}
	decryptAll(follower)
	seal := waitRotated(t, f, old.ID)
	if seal.ID != st0.RotatingTo || seal.RotatedAt.IsZero() || len(seal.Previous) != 1 || seal.Previous[0] != old.ID {
		t.Fatalf("seal after the rotation = %+v, want %s after %s", seal, st0.RotatingTo, old.ID)
	}
	if _, left := f.KeysNotSealedWith(seal.ID, 0); left != 0 {
		t.Fatalf("%d records still sealed with another key", left)
	}
	decryptAll(follower)
	decryptAll(leader)
	if _, err := st.Get(ctx, SealName); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old seal entry after the rotation: %v", err)
	}
	if _, err := st.Get(ctx, SealName+"."+seal.ID); err != nil {
		t.Fatalf("new seal entry: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "nodes drop the retired key", func() bool {
		_, lerr := leader.SealKey(old.ID)
		_, ferr := follower.SealKey(old.ID)
		return errors.Is(lerr, ErrSealed) && errors.Is(ferr, ErrSealed)
	})
	restarted := newFollower(t, leader, time.Now)
	decryptAll(restarted)
	if st := restarted.SealStatus(); st.ID != seal.ID || st.RotatingTo != "" {
		t.Fatalf("status on a restarted node = %+v", st)
	}
}

// TestSealRotationResumes: a rotation recorded but interrupted (its
// leader stopped after the begin) is finished by the next leader.
func TestSealRotationResumes(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	for i := range 10 {
		if err := s.CreateKey(ctx, DefaultEnclave, fmt.Sprintf("k%d", i), admin); err != nil {
			t.Fatal(err)
		}
	}
	_, ct, err := s.GenerateKey(ctx, DefaultEnclave, "k3", nil)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := f.Seal()
	// The begin of a rotation whose leader went away.
	key := make([]byte, 32)
	rand.Read(key)
	sl, _ := newSealer(key)
	rec, _ := sl.record()
	rec.Entry = SealName + "." + sl.id
	if err := st.Create(ctx, rec.Entry, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.propose(ctx, fsm.BeginSealRotation{Next: rec}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	next := newFollower(t, s, time.Now)
	next.cfg.Proposer = &localProposer{f: f, leader: true, index: f.AppliedIndex()}
	if pt, err := next.Decrypt(ctx, DefaultEnclave, "k3", ct, nil); err != nil || len(pt) != 32 {
		t.Fatalf("decrypt mid-rotation: %v", err)
	}
	next.resumeRotation()
	if seal := waitRotated(t, f, old.ID); seal.ID != rec.ID {
		t.Fatalf("rotated to %s, want %s", seal.ID, rec.ID)
	}
	if pt, err := next.Decrypt(ctx, DefaultEnclave, "k3", ct, nil); err != nil || len(pt) != 32 {
		t.Fatalf("decrypt after the resumed rotation: %v", err)
	}
	if k, _ := next.SealKey(""); !bytes.Equal(k, key) {
		t.Fatal("the node does not seal with the new key")
	}
}
