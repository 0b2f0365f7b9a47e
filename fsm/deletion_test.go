package fsm

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestScheduleAndEndDeletion: a scheduled deletion removes the record,
// reserves the name against creates and loads, survives a reopen, is
// listed as due once its purge time has come, and only the deletion it
// names can be ended.
func TestScheduleAndEndDeletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mustApply(t, f, 1, PutKey{Enclave: "default", Key: key("k"), Create: true}); err != nil {
		t.Fatal(err)
	}
	d := Deletion{Name: "k", DeletedAt: t0, DeletedBy: "admin", PurgeAt: t0.Add(time.Hour)}
	if err := mustApply(t, f, 2, ScheduleDeletion{Enclave: "default", Key: d}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Key("default", "k"); ok {
		t.Fatal("the record of a deleted key is still there")
	}
	if err := mustApply(t, f, 3, ScheduleDeletion{Enclave: "default", Key: d}); !errors.Is(err, ErrExists) {
		t.Fatalf("second deletion = %v, want ErrExists", err)
	}
	for i, c := range []PutKey{{Enclave: "default", Key: key("k"), Create: true}, {Enclave: "default", Key: key("k")}} {
		if err := mustApply(t, f, uint64(4+i), c); !errors.Is(err, ErrDeleted) {
			t.Fatalf("PutKey (create=%v) of a pending deletion = %v, want ErrDeleted", c.Create, err)
		}
	}
	if err := mustApply(t, f, 6, ScheduleDeletion{Enclave: "nope", Key: d}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deletion in a missing enclave = %v, want ErrNotFound", err)
	}
	f.Close()

	f, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, ok := f.Deleted("default", "k"); !ok || !reflect.DeepEqual(got, d) {
		t.Fatalf("after reopen Deleted = %+v %v, want %+v", got, ok, d)
	}
	if due, next := f.DueDeletions(t0); len(due) != 0 || !next.Equal(d.PurgeAt) {
		t.Fatalf("DueDeletions before purge time = %v, next %v", due, next)
	}
	if due, _ := f.DueDeletions(d.PurgeAt); len(due) != 1 || due[0].Key.Name != "k" || due[0].Enclave != "default" {
		t.Fatalf("DueDeletions at purge time = %+v", due)
	}
	if err := mustApply(t, f, 7, EndDeletion{Enclave: "default", Name: "k", DeletedAt: t0.Add(time.Second)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ending another deletion = %v, want ErrNotFound", err)
	}
	if err := mustApply(t, f, 8, EndDeletion{Enclave: "default", Name: "k", DeletedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if len(f.Deletions("default")) != 0 {
		t.Fatal("deletion still pending after EndDeletion")
	}
	if err := mustApply(t, f, 9, PutKey{Enclave: "default", Key: key("k")}); err != nil {
		t.Fatalf("load after the deletion ended: %v", err)
	}
}

// TestDeleteEnclaveDropsDeletions: an enclave's pending deletions go with
// it, so a re-created enclave of the same name starts empty.
func TestDeleteEnclaveDropsDeletions(t *testing.T) {
	f := openTest(t)
	mustApply(t, f, 1, PutEnclave{Enclave: EnclaveRecord{Name: "e", Admin: "a", CreatedAt: t0}})
	mustApply(t, f, 2, ScheduleDeletion{Enclave: "e", Key: Deletion{Name: "k", DeletedAt: t0, PurgeAt: t0}})
	before := f.Digest()
	if err := mustApply(t, f, 3, DeleteEnclave{Name: "e"}); err != nil {
		t.Fatal(err)
	}
	if f.Digest() == before {
		t.Fatal("digest did not change")
	}
	mustApply(t, f, 4, PutEnclave{Enclave: EnclaveRecord{Name: "e", Admin: "a", CreatedAt: t0}})
	if _, ok := f.Deleted("e", "k"); ok {
		t.Fatal("pending deletion outlived its enclave")
	}
}
