package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/keyraft/keyraft/internal/boltcheck"
)

// snapshotMagic starts every snapshot, followed by one format version byte.
var snapshotMagic = []byte("KEYRAFT-FSM")

// ErrBadSnapshot is returned (wrapped, usually in a *SnapshotError saying
// why) by Restore, CheckSnapshot and PrepareRestore for data that is not a
// snapshot this build can restore.
var ErrBadSnapshot = errors.New("fsm: not a valid snapshot")

// Snapshot is a consistent, point-in-time view of the state that can be
// written out while Apply goes on. Release must be called exactly once.
type Snapshot struct {
	tx *bolt.Tx
}

// Snapshot captures the current state. It is cheap: it opens a read
// transaction; the bytes are produced by WriteTo.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &Snapshot{tx: tx}, nil
}

// WriteTo writes the snapshot: a magic header, a format version and the
// bbolt file image.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	hdr := append(append([]byte{}, snapshotMagic...), formatVersion)
	n, err := w.Write(hdr)
	if err != nil {
		return int64(n), fmt.Errorf("fsm: write snapshot: %w", err)
	}
	m, err := s.tx.WriteTo(w)
	if err != nil {
		return int64(n) + m, fmt.Errorf("fsm: write snapshot: %w", err)
	}
	return int64(n) + m, nil
}

// Release ends the snapshot's read transaction.
func (s *Snapshot) Release() { _ = s.tx.Rollback() }

// Restore replaces the whole state with a snapshot written by WriteTo. The
// new file is written and checked beside the old one and renamed over it,
// so a crash during Restore leaves either the old or the new state, never a
// mix. It takes the image as it is, applied index included: an image for a
// cluster-wide restore must first be rewritten by PrepareRestore. After the
// swap, observers get a StateRestored event. It must not be called
// concurrently with Apply.
func (f *FSM) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	hdr := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, hdr); err != nil || !bytes.Equal(hdr[:len(snapshotMagic)], snapshotMagic) {
		return badSnapshot("bad header: not a keyraft snapshot")
	}
	if hdr[len(snapshotMagic)] != formatVersion {
		return badSnapshot("format %d, this build reads %d", hdr[len(snapshotMagic)], formatVersion)
	}
	tmp := f.path + ".restore"
	if err := writeFileSync(tmp, br); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	// Check the image before replacing anything: its page structure first
	// (bbolt would loop forever on a cycle), then its contents.
	if err := boltcheck.VerifyFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	db, _, err := openDB(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	db.Close()

	if err := f.swap(tmp); err != nil {
		return err
	}
	go f.signalApplied()
	f.notify([]Event{{Kind: StateRestored}})
	return nil
}

// swap replaces the state file with the one at tmp and loads it.
func (f *FSM) swap(tmp string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("fsm: restore: close: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	db, st, err := openDB(f.path)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.db, f.st = db, st
	if st.restore != nil {
		f.log.Info("restored state from snapshot; restored keys wait for reconciliation with the keystore",
			"applied", st.applied, "keys", st.keyCount(), "restore", st.restore.ID)
	} else {
		f.log.Info("restored state from snapshot", "applied", st.applied, "keys", st.keyCount())
	}
	return nil
}

func writeFileSync(path string, r io.Reader) error {
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fd, r); err != nil {
		fd.Close()
		return err
	}
	if err := fd.Sync(); err != nil {
		fd.Close()
		return err
	}
	return fd.Close()
}

func (s *state) keyCount() int {
	n := 0
	for _, m := range s.keys {
		n += len(m)
	}
	return n
}

// Digest returns a hash of the replicated state (everything but the applied
// index), so tests and operators can check that replicas agree.
func (f *FSM) Digest() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	view := struct {
		Seal       *SealRecord
		Enclaves   map[string]EnclaveRecord
		Keys       map[string]map[string]KeyRecord
		Policies   map[string]map[string]PolicyRecord
		Identities map[string]map[string]IdentityRecord
		Members    map[string]Member
		Removed    map[string]uint64
		Revoked    map[string]uint64
		Restore    *RestoreMarker                    `json:",omitempty"`
		Protected  map[string]map[string]Protection  `json:",omitempty"`
		Deleted    map[string]map[string]Deletion    `json:",omitempty"`
		SealNext   *SealRecord                       `json:",omitempty"`
		Versions   map[string]map[string]KeyVersions `json:",omitempty"`
	}{f.st.seal, f.st.enclaves, nonEmpty(f.st.keys), nonEmpty(f.st.policies), nonEmpty(f.st.identities), f.st.members, f.st.removed, f.st.revoked, f.st.restore, nonEmpty(f.st.protected), nonEmpty(f.st.deleted), f.st.sealNext, nonEmpty(f.st.versions)}
	b, _ := json.Marshal(view) // maps are marshalled with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// nonEmpty drops empty inner maps: a replica that applied a delete keeps an
// empty map where a replica restored from a snapshot has none.
func nonEmpty[T any](m map[string]map[string]T) map[string]map[string]T {
	out := make(map[string]map[string]T, len(m))
	for k, v := range m {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}
