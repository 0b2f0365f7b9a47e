package fsm

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func openTest(t *testing.T) *FSM {
	t.Helper()
	f, err := Open(filepath.Join(t.TempDir(), "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustApply(t *testing.T, f *FSM, index uint64, c Command) error {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	res, fatal := f.Apply(index, b)
	if fatal != nil {
		t.Fatalf("apply %d: fatal: %v", index, fatal)
	}
	return res
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func key(name string) KeyRecord {
	return KeyRecord{Name: name, Algorithm: "AES256", CreatedAt: t0, CreatedBy: "admin", Sealed: []byte("sealed-" + name), LoadedAt: t0}
}

func TestCodecRoundTrip(t *testing.T) {
	cmds := []Command{
		PutKey{Enclave: "default", Key: key("k1"), Create: true},
		RemoveKeys{Enclave: "e", Names: []string{"a", "b"}},
		Barrier{},
		PutEnclave{Enclave: EnclaveRecord{Name: "e", Admin: "x", CreatedAt: t0}},
		DeleteEnclave{Name: "e"},
		PutPolicy{Enclave: "e", Policy: PolicyRecord{Name: "p", Allow: []string{"/v1/key/*"}, CreatedAt: t0}},
		DeletePolicy{Enclave: "e", Name: "p"},
		AssignIdentity{Enclave: "e", Identity: IdentityRecord{Identity: "id", Policy: "p", CreatedAt: t0}},
		DeleteIdentity{Enclave: "e", Identity: "id"},
		ReplacePolicies{Enclave: "e", Policies: []PolicyRecord{{Name: "p", CreatedAt: t0}}},
		SetSeal{Seal: SealRecord{ID: "abc", Check: []byte{1, 2}}},
		PutMember{Member: Member{ID: "n1", RaftAddr: "a:1", APIAddr: "b:2"}},
		RemoveMember{ID: "n1"},
		ScheduleDeletion{Enclave: "e", Key: Deletion{Name: "k", DeletedAt: t0, DeletedBy: "x", PurgeAt: t0.Add(time.Hour)}},
		EndDeletion{Enclave: "e", Name: "k", DeletedAt: t0},
		BeginSealRotation{Next: SealRecord{ID: "b", Check: []byte{3}, Entry: "keyraft.seal.b"}},
		ResealKeys{Seal: "b", Keys: []ResealedKey{{Enclave: "e", Name: "k", IfIndex: 4, Sealed: []byte{5}}}},
		FinishSealRotation{ID: "b", At: t0},
		AddKeyVersion{Enclave: "e", Version: VersionInfo{Version: 2, CreatedAt: t0}, Key: key("k"), IfIndex: 7},
		SetMinVersion{Enclave: "e", Name: "k", MinVersion: 2},
		DestroyKeyVersion{Enclave: "e", Version: 2, Key: key("k"), IfIndex: 9},
	}
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if Type(b[0]) != c.Type() {
			t.Fatalf("%T: type byte %d, want %d", c, b[0], c.Type())
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip %T:\n got %#v\nwant %#v", c, got, c)
		}
	}
	if _, err := Decode([]byte{200, '{', '}'}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown type: got %v", err)
	}
	if _, err := Decode(nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("empty: got %v", err)
	}
}

func TestApplyKeys(t *testing.T) {
	f := openTest(t)
	var events []Event
	f.Subscribe(func(e Event) { events = append(events, e) })

	if err := mustApply(t, f, 1, PutKey{Enclave: "default", Key: key("k1"), Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := mustApply(t, f, 2, PutKey{Enclave: "default", Key: key("k1"), Create: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	if err := mustApply(t, f, 3, PutKey{Enclave: "default", Key: key("k2")}); err != nil {
		t.Fatal(err)
	}
	r, ok := f.Key("default", "k1")
	if !ok || r.Index != 1 || !bytes.Equal(r.Sealed, []byte("sealed-k1")) {
		t.Fatalf("k1 = %+v, %v", r, ok)
	}
	if _, ok := f.Key("other", "k1"); ok {
		t.Fatal("key visible in another enclave")
	}
	if got := names(f.Keys("default", "")); !reflect.DeepEqual(got, []string{"k1", "k2"}) {
		t.Fatalf("keys = %v", got)
	}
	if got := names(f.Keys("default", "k2")); !reflect.DeepEqual(got, []string{"k2"}) {
		t.Fatalf("prefix keys = %v", got)
	}
	if err := mustApply(t, f, 4, RemoveKeys{Enclave: "default", Names: []string{"k1"}}); err != nil {
		t.Fatal(err)
	}
	if err := mustApply(t, f, 5, RemoveKeys{Enclave: "default", Names: []string{"k1"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove missing: %v", err)
	}
	if _, ok := f.Key("default", "k1"); ok {
		t.Fatal("k1 still present")
	}
	if f.AppliedIndex() != 5 {
		t.Fatalf("applied = %d", f.AppliedIndex())
	}
	want := []Event{{KeyPut, "default", "k1"}, {KeyPut, "default", "k2"}, {KeyRemoved, "default", "k1"}}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	// A replayed index is skipped.
	if err := mustApply(t, f, 3, PutKey{Enclave: "default", Key: key("zzz")}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Key("default", "zzz"); ok {
		t.Fatal("replayed index applied twice")
	}
}

func TestApplyPoliciesAndMembers(t *testing.T) {
	f := openTest(t)
	if err := mustApply(t, f, 1, AssignIdentity{Enclave: "default", Identity: IdentityRecord{Identity: "i1", Policy: "p"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("assign to missing policy: %v", err)
	}
	mustApply(t, f, 2, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "api", Allow: []string{"/v1/key/*"}}})
	mustApply(t, f, 3, ReplacePolicies{Enclave: "default",
		Policies:   []PolicyRecord{{Name: "minio", Allow: []string{"/v1/key/generate/*"}}},
		Identities: []IdentityRecord{{Identity: "i1", Policy: "minio"}}})
	if _, ok := f.Identity("default", "i1"); !ok {
		t.Fatal("identity i1 missing")
	}
	// A reload replaces config policies but keeps API-made ones.
	mustApply(t, f, 4, ReplacePolicies{Enclave: "default", Policies: []PolicyRecord{{Name: "other"}}})
	if got := policyNames(f.Policies("default")); !reflect.DeepEqual(got, []string{"api", "other"}) {
		t.Fatalf("policies = %v", got)
	}
	if _, ok := f.Identity("default", "i1"); ok {
		t.Fatal("identity of replaced config policy survived")
	}
	mustApply(t, f, 5, AssignIdentity{Enclave: "default", Identity: IdentityRecord{Identity: "i2", Policy: "api"}})
	mustApply(t, f, 6, DeletePolicy{Enclave: "default", Name: "api"})
	if _, ok := f.Identity("default", "i2"); ok {
		t.Fatal("identity of deleted policy survived")
	}

	mustApply(t, f, 7, PutMember{Member: Member{ID: "n1", RaftAddr: "127.0.0.1:1"}})
	mustApply(t, f, 8, RemoveMember{ID: "n1"})
	if err := mustApply(t, f, 9, PutMember{Member: Member{ID: "n1"}}); !errors.Is(err, ErrRemoved) {
		t.Fatalf("reuse removed id: %v", err)
	}
	if !f.Removed("n1") || len(f.Members()) != 0 {
		t.Fatal("member n1 not retired")
	}
	mustApply(t, f, 10, SetSeal{Seal: SealRecord{ID: "s1"}})
	if err := mustApply(t, f, 11, SetSeal{Seal: SealRecord{ID: "s2"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("second seal: %v", err)
	}
	if s, _ := f.Seal(); s.ID != "s1" {
		t.Fatalf("seal = %v", s)
	}
	mustApply(t, f, 12, PutEnclave{Enclave: EnclaveRecord{Name: "t1", Admin: "a"}})
	mustApply(t, f, 13, PutKey{Enclave: "t1", Key: key("k")})
	mustApply(t, f, 14, DeleteEnclave{Name: "t1"})
	if _, ok := f.Key("t1", "k"); ok {
		t.Fatal("enclave delete kept its keys")
	}
}

func TestFatalOnUnknownCommand(t *testing.T) {
	f := openTest(t)
	if _, fatal := f.Apply(1, []byte{99}); !errors.Is(fatal, ErrFatal) || !errors.Is(fatal, ErrUnknownCommand) {
		t.Fatalf("fatal = %v", fatal)
	}
	if f.AppliedIndex() != 0 {
		t.Fatal("unknown command advanced the applied index")
	}
}

func TestPersistAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fsm.db")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, 1, PutKey{Enclave: "default", Key: key("k1")})
	mustApply(t, f, 2, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "p"}})
	mustApply(t, f, 3, RemoveKeys{Enclave: "default", Names: []string{"k1"}})
	mustApply(t, f, 4, PutKey{Enclave: "default", Key: key("k2")})
	digest := f.Digest()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply goes on while the snapshot is open; the snapshot keeps its view.
	mustApply(t, f, 5, PutKey{Enclave: "default", Key: key("k3")})
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: state survives.
	f, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.AppliedIndex() != 5 {
		t.Fatalf("applied after restart = %d", f.AppliedIndex())
	}
	if _, ok := f.Key("default", "k3"); !ok {
		t.Fatal("k3 lost on restart")
	}

	// Restore into a fresh FSM gives the snapshot's state.
	g := openTest(t)
	if err := g.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if g.Digest() != digest {
		t.Fatal("restored digest differs from the state at snapshot time")
	}
	if g.AppliedIndex() != 4 {
		t.Fatalf("restored applied = %d", g.AppliedIndex())
	}
	if _, ok := g.Key("default", "k3"); ok {
		t.Fatal("snapshot contains a later write")
	}
	if err := g.Restore(bytes.NewReader([]byte("garbage"))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("bad snapshot: %v", err)
	}
	if _, ok := g.Key("default", "k2"); !ok {
		t.Fatal("failed restore destroyed the state")
	}
}

func TestWaitApplied(t *testing.T) {
	f := openTest(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- f.WaitApplied(ctx, 2)
	}()
	mustApply(t, f, 1, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "a"}})
	mustApply(t, f, 2, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "b"}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitApplied(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait past applied: %v", err)
	}
}

func names(rs []KeyRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func policyNames(rs []PolicyRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}
