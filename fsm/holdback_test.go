package fsm

import (
	"path/filepath"
	"testing"
)

// TestHoldBackSurvivesRestartUntilMarked: a hold-back holds back the key
// records at or below its index, survives reopening the state, and ends
// when a MarkRestore covering it is applied (the marker then holds the
// records back until ReconcileKeys).
func TestHoldBackSurvivesRestartUntilMarked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"old", "new"} {
		if err := applyCmd(f, uint64(i+1), PutKey{Enclave: "default", Key: key(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.HoldBack(1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.HeldBack() != 1 {
		t.Fatalf("HeldBack after reopening = %d, want 1", f.HeldBack())
	}
	if _, _, unconfirmed := f.ServableKey("default", "old"); !unconfirmed {
		t.Fatal("a held-back record is servable")
	}
	if _, _, unconfirmed := f.ServableKey("default", "new"); unconfirmed {
		t.Fatal("a record above the hold-back is held back")
	}
	// A marker below the hold-back does not end it.
	if err := applyCmd(f, 3, MarkRestore{Marker: RestoreMarker{ID: "a", Applied: 0}}); err != nil {
		t.Fatal(err)
	}
	if f.HeldBack() != 1 {
		t.Fatal("a marker below the hold-back ended it")
	}
	if err := applyCmd(f, 4, MarkRestore{Marker: RestoreMarker{ID: "b", Applied: 3}}); err != nil {
		t.Fatal(err)
	}
	if f.HeldBack() != 0 {
		t.Fatal("a covering marker did not end the hold-back")
	}
	if _, _, unconfirmed := f.ServableKey("default", "new"); !unconfirmed {
		t.Fatal("the marker does not hold back the records it covers")
	}
	if err := applyCmd(f, 5, ReconcileKeys{Restore: "b", Evict: []KeyRef{{Enclave: "default", Name: "old"}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, unconfirmed := f.ServableKey("default", "new"); !ok || unconfirmed {
		t.Fatal("the reconciled record is not servable")
	}
	if _, ok := f.Key("default", "old"); ok {
		t.Fatal("the evicted record is still there")
	}
	f.Close()
	if f, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.HeldBack() != 0 {
		t.Fatal("the ended hold-back came back after reopening")
	}
}
