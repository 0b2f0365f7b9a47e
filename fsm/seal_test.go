package fsm

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSealRotation: a rotation finishes only once every record is
// re-sealed with the next key; stale re-seals are skipped; the state
// survives a reopen mid-rotation.
func TestSealRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, 1, SetSeal{Seal: SealRecord{ID: "A", Check: []byte{1}}})
	mustApply(t, f, 2, PutKey{Enclave: "default", Key: key("k1"), Create: true})
	mustApply(t, f, 3, PutKey{Enclave: "default", Key: key("k2"), Create: true})
	if err := mustApply(t, f, 4, BeginSealRotation{Next: SealRecord{ID: "A"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("rotation to the current key = %v, want ErrExists", err)
	}
	next := SealRecord{ID: "B", Check: []byte{2}, Entry: "keyraft.seal.B"}
	if err := mustApply(t, f, 5, BeginSealRotation{Next: next}); err != nil {
		t.Fatal(err)
	}
	if err := mustApply(t, f, 6, BeginSealRotation{Next: next}); err != nil {
		t.Fatalf("repeated begin = %v, want nil", err)
	}
	if err := mustApply(t, f, 7, BeginSealRotation{Next: SealRecord{ID: "C"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("second rotation = %v, want ErrExists", err)
	}
	if _, n := f.KeysNotSealedWith("B", 10); n != 2 {
		t.Fatalf("%d records to re-seal, want 2", n)
	}
	if err := mustApply(t, f, 8, FinishSealRotation{ID: "B", At: t0}); !errors.Is(err, ErrSealInUse) {
		t.Fatalf("finish before re-sealing = %v, want ErrSealInUse", err)
	}
	err = mustApply(t, f, 9, ResealKeys{Seal: "B", Keys: []ResealedKey{
		{Enclave: "default", Name: "k1", IfIndex: 2, Sealed: []byte("new-k1")},
		{Enclave: "default", Name: "k2", IfIndex: 99, Sealed: []byte("stale")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	if f, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, ok := f.SealNext(); !ok || got.ID != "B" {
		t.Fatalf("after reopen SealNext = %+v %v", got, ok)
	}
	if r, _ := f.Key("default", "k2"); string(r.Sealed) != "sealed-k2" || f.SealOf(r) != "A" {
		t.Fatalf("a stale re-seal changed k2: %+v", r)
	}
	if r, _ := f.Key("default", "k1"); string(r.Sealed) != "new-k1" || r.Seal != "B" || r.Index != 9 {
		t.Fatalf("k1 after the re-seal: %+v", r)
	}
	mustApply(t, f, 10, ResealKeys{Seal: "B", Keys: []ResealedKey{{Enclave: "default", Name: "k2", IfIndex: 3, Sealed: []byte("new-k2")}}})
	if err := mustApply(t, f, 11, FinishSealRotation{ID: "B", At: t0}); err != nil {
		t.Fatal(err)
	}
	seal, _ := f.Seal()
	if seal.ID != "B" || seal.Entry != "keyraft.seal.B" || !seal.RotatedAt.Equal(t0) || !reflect.DeepEqual(seal.Previous, []string{"A"}) {
		t.Fatalf("seal after the rotation: %+v", seal)
	}
	if _, ok := f.SealNext(); ok {
		t.Fatal("rotation still in progress after finish")
	}
	if err := mustApply(t, f, 12, ResealKeys{Seal: "B"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("re-seal without a rotation = %v, want ErrNotFound", err)
	}
}
