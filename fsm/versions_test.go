package fsm

import (
	"errors"
	"testing"
)

// TestKeyVersionsRegistry: versions are added one at a time over the
// record they were built on, survive an eviction (a load must carry them)
// and go with a delete.
func TestKeyVersionsRegistry(t *testing.T) {
	f := openTest(t)
	mustApply(t, f, 1, PutKey{Enclave: "default", Key: key("k"), Create: true})
	v2 := VersionInfo{Version: 2, CreatedAt: t0, CreatedBy: "admin"}
	rec := key("k")
	rec.Sealed = []byte("bundle-2")
	if err := mustApply(t, f, 2, AddKeyVersion{Enclave: "default", Version: v2, Key: rec, IfIndex: 99}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("add over another record = %v, want ErrNotFound", err)
	}
	if err := mustApply(t, f, 3, AddKeyVersion{Enclave: "default", Version: VersionInfo{Version: 3}, Key: rec, IfIndex: 1}); !errors.Is(err, ErrVersionsChanged) {
		t.Fatalf("add of version 3 first = %v, want ErrVersionsChanged", err)
	}
	if err := mustApply(t, f, 4, AddKeyVersion{Enclave: "default", Version: v2, Key: rec, IfIndex: 1}); err != nil {
		t.Fatal(err)
	}
	r, _ := f.Key("default", "k")
	if len(r.Versions) != 1 || r.Versions[0] != v2 || string(r.Sealed) != "bundle-2" || r.Index != 4 {
		t.Fatalf("record after the rotation: %+v", r)
	}
	// A load built before the rotation (no versions) is refused.
	if err := mustApply(t, f, 5, PutKey{Enclave: "default", Key: key("k")}); !errors.Is(err, ErrVersionsChanged) {
		t.Fatalf("stale load = %v, want ErrVersionsChanged", err)
	}
	if err := mustApply(t, f, 6, SetMinVersion{Enclave: "default", Name: "k", MinVersion: 3}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("min version the key does not have = %v", err)
	}
	if err := mustApply(t, f, 7, SetMinVersion{Enclave: "default", Name: "k", MinVersion: 2}); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.Key("default", "k"); r.MinVersion != 2 || r.Index != 7 {
		t.Fatalf("record after SetMinVersion: %+v", r)
	}
	// An eviction keeps the registry; a load must carry it.
	mustApply(t, f, 8, RemoveKeys{Enclave: "default", Names: []string{"k"}})
	if v, ok := f.KeyVersions("default", "k"); !ok || len(v.Versions) != 1 || v.MinVersion != 2 {
		t.Fatalf("registry after an eviction: %+v %v", v, ok)
	}
	load := key("k")
	load.Versions, load.MinVersion = []VersionInfo{v2}, 2
	if err := mustApply(t, f, 9, PutKey{Enclave: "default", Key: load}); err != nil {
		t.Fatalf("load with the versions: %v", err)
	}
	// A delete forgets them.
	mustApply(t, f, 10, RemoveKeys{Enclave: "default", Names: []string{"k"}, Forget: true})
	if _, ok := f.KeyVersions("default", "k"); ok {
		t.Fatal("registry outlived the delete")
	}
}
