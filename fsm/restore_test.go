package fsm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// snapshotOf returns f's snapshot bytes.
func snapshotOf(t *testing.T, f *FSM) []byte {
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

// editImage returns data with its bbolt image changed by edit.
func editImage(t *testing.T, data []byte, edit func(tx *bolt.Tx) error) []byte {
	t.Helper()
	hdr := len(snapshotMagic) + 1
	path := filepath.Join(t.TempDir(), "edit.db")
	if err := os.WriteFile(path, data[hdr:], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(edit); err != nil {
		t.Fatal(err)
	}
	out := bytes.NewBuffer(append([]byte{}, data[:hdr]...))
	if err := db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(out); return err }); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func put(bucket []byte, key string, value []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), value) }
}

// backupFSM is the state a backup is taken of: seal s1, an enclave with a
// key, a policy and an identity, a default-enclave key, a member that the
// live cluster no longer has, and an applied index far above the live one.
func backupFSM(t *testing.T) *FSM {
	t.Helper()
	b := openTest(t)
	mustApply(t, b, 1, SetSeal{Seal: SealRecord{ID: "s1", Check: []byte("backup")}})
	mustApply(t, b, 2, PutMember{Member: Member{ID: "old", RaftAddr: "10.0.0.9:7374", Identity: "old-id"}})
	mustApply(t, b, 3, PutEnclave{Enclave: EnclaveRecord{Name: "e1", Admin: "a"}})
	mustApply(t, b, 4, PutKey{Enclave: "e1", Key: key("ek")})
	mustApply(t, b, 5, PutPolicy{Enclave: "e1", Policy: PolicyRecord{Name: "p"}})
	mustApply(t, b, 6, AssignIdentity{Enclave: "e1", Identity: IdentityRecord{Identity: "i", Policy: "p"}})
	mustApply(t, b, 500, PutKey{Enclave: "default", Key: key("k1")})
	mustApply(t, b, 550, PutKey{Enclave: "default", Key: key("k2")})
	return b
}

// liveFSM is the cluster the backup is restored into: the same seal key
// (another check value), three members, a removed one, applied index 8.
func liveFSM(t *testing.T, sealID string) *FSM {
	t.Helper()
	l := openTest(t)
	mustApply(t, l, 1, SetSeal{Seal: SealRecord{ID: sealID, Check: []byte("live")}})
	for i, id := range []string{"n1", "n2", "n3", "n0"} {
		mustApply(t, l, uint64(2+i), PutMember{Member: Member{ID: id, RaftAddr: id + ":7374", Identity: id + "-id"}})
	}
	mustApply(t, l, 6, RemoveMember{ID: "n0"})
	mustApply(t, l, 7, PutKey{Enclave: "default", Key: key("live-only")})
	mustApply(t, l, 8, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "live-policy"}})
	return l
}

func TestCheckSnapshotRejectsInconsistentImages(t *testing.T) {
	good := snapshotOf(t, backupFSM(t))
	live := liveFSM(t, "s1")
	if err := CheckSnapshot(live, good); err != nil {
		t.Fatalf("genuine backup rejected: %v", err)
	}
	hdr := len(snapshotMagic) + 1
	withFormatByte := append(append([]byte{}, good[:hdr-1]...), 9)
	cases := []struct {
		name, reason string
		data         []byte
		live         *FSM
	}{
		{"garbage", "bad header", []byte("garbage"), nil},
		{"format version", "format 9", append(withFormatByte, good[hdr:]...), nil},
		{"header only", "no state image", good[:hdr], nil},
		{"not bbolt", "not a readable bbolt file", append(append([]byte{}, good[:hdr]...), bytes.Repeat([]byte("not a bbolt file "), 2000)...), nil},
		{"truncated", "", good[:hdr+(len(good)-hdr)/2], nil},
		{"missing bucket", `bucket "policies" is missing`, editImage(t, good, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketPolicies) }), nil},
		{"state format", "state format 2", editImage(t, good, put(bucketMeta, string(metaFormat), u64(2))), nil},
		{"key without seal", "has no seal record", editImage(t, good, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaSeal) }), nil},
		{"key in missing enclave", `key "k" belongs to enclave "ghost"`, editImage(t, good, put(bucketKeys, "ghost\x00k", []byte(`{"name":"k","sealed":"AQ=="}`))), nil},
		{"policy in missing enclave", `policy "p" belongs to enclave "ghost"`, editImage(t, good, put(bucketPolicies, "ghost\x00p", []byte(`{"name":"p"}`))), nil},
		{"identity in missing enclave", `identity "i" belongs to enclave "ghost"`, editImage(t, good, put(bucketIdentities, "ghost\x00i", []byte(`{"identity":"i","policy":"p"}`))), nil},
		{"enclave deleted under its keys", `belongs to enclave "e1"`, editImage(t, good, func(tx *bolt.Tx) error { return tx.Bucket(bucketEnclaves).Delete([]byte("e1")) }), nil},
		{"undecodable record", "not a valid record", editImage(t, good, put(bucketKeys, "default\x00x", []byte("{"))), nil},
		{"misfiled record", "holds the record of", editImage(t, good, put(bucketKeys, "default\x00a", []byte(`{"name":"b","sealed":"AQ=="}`))), nil},
		{"no sealed material", "no sealed material", editImage(t, good, put(bucketKeys, "default\x00a", []byte(`{"name":"a"}`))), nil},
		{"malformed seal", "seal record is malformed", editImage(t, good, put(bucketMeta, string(metaSeal), []byte("{}"))), nil},
		{"another cluster", "backup of another cluster", good, liveFSM(t, "s2")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := live
			if tc.live != nil {
				l = tc.live
			}
			for fn, check := range map[string]func() error{
				"CheckSnapshot":  func() error { return CheckSnapshot(l, tc.data) },
				"PrepareRestore": func() error { _, err := PrepareRestore(l, tc.data); return err },
			} {
				err := check()
				var se *SnapshotError
				if !errors.Is(err, ErrBadSnapshot) || !errors.As(err, &se) {
					t.Fatalf("%s: got %v, want a *SnapshotError", fn, err)
				}
				if !strings.Contains(se.Reason, tc.reason) {
					t.Fatalf("%s: reason %q does not say %q", fn, se.Reason, tc.reason)
				}
			}
		})
	}
	// Nothing was left behind beside the live state.
	entries, err := os.ReadDir(filepath.Dir(live.path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("files left beside the live state: %v", entries)
	}
}

func TestPrepareRestoreKeepsIndexesMembershipAndSeal(t *testing.T) {
	backup := snapshotOf(t, backupFSM(t))
	live := liveFSM(t, "s1")
	wantMembers, wantSeal := live.Members(), mustSeal(t, live)

	// The bug: installed as it is, the backup's applied index (550) makes
	// every node skip the writes Raft commits next.
	naive := openTest(t)
	if err := naive.Restore(bytes.NewReader(backup)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, naive, 10, PutPolicy{Enclave: "default", Policy: PolicyRecord{Name: "after"}})
	if _, ok := naive.Policy("default", "after"); ok {
		t.Fatal("test premise: the unprepared image should skip index 10")
	}

	image, err := PrepareRestore(live, backup)
	if err != nil {
		t.Fatal(err)
	}
	// Raft installs the image on every node: the leader (live) and a
	// follower that installs it later (fresh state here).
	follower := openTest(t)
	for _, f := range []*FSM{live, follower} {
		if err := f.Restore(bytes.NewReader(image)); err != nil {
			t.Fatal(err)
		}
		if f.AppliedIndex() != 8 {
			t.Fatalf("applied after restore = %d, want the live index 8", f.AppliedIndex())
		}
		if got := f.Members(); !reflect.DeepEqual(got, wantMembers) {
			t.Fatalf("members after restore = %v, want %v", got, wantMembers)
		}
		if !f.Removed("n0") || f.Removed("old") {
			t.Fatal("removed ids are not the live cluster's")
		}
		if got := mustSeal(t, f); !reflect.DeepEqual(got, wantSeal) {
			t.Fatalf("seal after restore = %+v", got)
		}
		m, ok := f.RestorePending()
		if !ok || m.Applied != 8 || m.ID == "" {
			t.Fatalf("restore marker = %+v, %v", m, ok)
		}
		for _, r := range append(f.Keys("default", ""), f.Keys("e1", "")...) {
			if r.Index != 8 || !f.Unconfirmed(r) {
				t.Fatalf("restored record %+v is not marked unconfirmed", r)
			}
		}
		if _, ok := f.Key("default", "live-only"); ok {
			t.Fatal("a key absent from the backup survived the restore")
		}
		if _, ok := f.Policy("e1", "p"); !ok {
			t.Fatal("backup's policy not restored")
		}
	}
	if live.Digest() != follower.Digest() {
		t.Fatal("leader and follower disagree after installing the same image")
	}

	// Raft continues above its last index (here 9): every write applies,
	// and a record written now is confirmed.
	m, _ := live.RestorePending()
	later := []struct {
		index uint64
		cmd   Command
	}{
		{10, PutKey{Enclave: "default", Key: key("new")}},
		{11, PutKey{Enclave: "default", Key: key("k1")}}, // re-created after the restore
		{12, ReconcileKeys{Restore: "stale", Evict: []KeyRef{{"default", "k2"}}}},
		{13, ReconcileKeys{Restore: m.ID,
			Evict:  []KeyRef{{"default", "k2"}, {"default", "k1"}, {"default", "new"}},
			Reload: []ReloadKey{{Enclave: "e1", Key: key("ek")}, {Enclave: "default", Key: key("k2")}}}},
		{14, ReconcileKeys{Restore: m.ID}},
	}
	wantResults := []error{nil, nil, ErrNotFound, nil, ErrNotFound}
	for _, f := range []*FSM{live, follower} {
		var events []Event
		f.Subscribe(func(e Event) { events = append(events, e) })
		for i, l := range later {
			if err := mustApply(t, f, l.index, l.cmd); !errors.Is(err, wantResults[i]) {
				t.Fatalf("apply %d: %v, want %v", l.index, err, wantResults[i])
			}
		}
		if f.AppliedIndex() != 14 {
			t.Fatalf("applied = %d", f.AppliedIndex())
		}
		if _, ok := f.RestorePending(); ok {
			t.Fatal("marker survived the reconcile")
		}
		if _, ok := f.Key("default", "k2"); ok {
			t.Fatal("evicted restored key still present")
		}
		for _, name := range []string{"new", "k1"} {
			if r, ok := f.Key("default", name); !ok || r.Index <= 8 || f.Unconfirmed(r) {
				t.Fatalf("key %s written after the restore: %+v, %v", name, r, ok)
			}
		}
		if r, ok := f.Key("e1", "ek"); !ok || r.Index != 13 {
			t.Fatalf("reloaded key = %+v, %v", r, ok)
		}
		want := []Event{{KeyPut, "default", "new"}, {KeyPut, "default", "k1"}, {KeyRemoved, "default", "k2"}, {KeyPut, "e1", "ek"}}
		if !reflect.DeepEqual(events, want) {
			t.Fatalf("events = %v, want %v", events, want)
		}
	}
	digest := live.Digest()
	if follower.Digest() != digest {
		t.Fatal("replicas diverged after the restore")
	}

	// A restart: Raft restores its latest snapshot (the restored image)
	// and replays the log after it; the state comes out the same.
	path := follower.path
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	restarted, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	if restarted.Digest() != digest || restarted.AppliedIndex() != 14 {
		t.Fatal("state changed across a reopen")
	}
	if err := restarted.Restore(bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
	for _, l := range later {
		mustApply(t, restarted, l.index, l.cmd)
	}
	if restarted.Digest() != digest {
		t.Fatal("restore and replay after a restart gave another state")
	}
}

func TestRestoreEmitsStateRestored(t *testing.T) {
	f := openTest(t)
	var got []Event
	f.Subscribe(func(e Event) { got = append(got, e) })
	if err := f.Restore(bytes.NewReader(snapshotOf(t, backupFSM(t)))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Event{{Kind: StateRestored}}) {
		t.Fatalf("events = %v", got)
	}
}

func TestReconcileKeysCodec(t *testing.T) {
	c := ReconcileKeys{Restore: "r", Evict: []KeyRef{{"e", "a"}}, Reload: []ReloadKey{{Enclave: "e", Key: key("b")}}}
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if Type(b[0]) != 15 {
		t.Fatalf("type byte = %d, want 15", b[0])
	}
	got, err := Decode(b)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %#v, %v", got, err)
	}
}

func mustSeal(t *testing.T, f *FSM) SealRecord {
	t.Helper()
	s, ok := f.Seal()
	if !ok {
		t.Fatal("no seal record")
	}
	return s
}
