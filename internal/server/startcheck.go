package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/boltcheck"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/crypto"
)

// ErrCorruptState is wrapped by the *CorruptFileError that Start returns
// when a file of the node's state (data_dir/raft.db, data_dir/fsm.db, a
// snapshot under data_dir/snapshots, or an fs keystore entry) is damaged.
// The node then changes nothing on disk; docs/operations.md ("Corrupted
// state on disk") says how to recover.
var ErrCorruptState = errors.New("corrupted state on disk")

// CorruptFileError names a damaged file and says what is wrong with it.
type CorruptFileError struct {
	Path   string // the damaged file
	Reason string
	Err    error // underlying error, if any
}

// Error returns "server: <path>: corrupted state on disk: <reason>[: <err>]".
func (e *CorruptFileError) Error() string {
	s := "server: " + e.Path + ": " + ErrCorruptState.Error() + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrCorruptState and the underlying error.
func (e *CorruptFileError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorruptState, e.Err}
	}
	return []error{ErrCorruptState}
}

func corrupt(path, reason string, err error) error {
	return &CorruptFileError{Path: path, Reason: reason, Err: err}
}

// checkState inspects the node's files read-only before anything opens
// them for writing: the bbolt files raft.db and fsm.db, every Raft snapshot
// (data_dir/snapshots/snapshots/<id>/{meta.json,state.bin})
// and, for the fs keystore, every entry. Missing files are fine (a new
// node). It returns a *CorruptFileError for the first damaged file and
// other errors for I/O failures.
//
// bbolt trusts its files: a truncated file whose pages it maps past the end
// kills the process with SIGBUS, and Raft silently skips a snapshot whose
// metadata it cannot read and falls back to an older one. Hence these
// checks, which the rest of start-up cannot do without writing.
func checkState(cfg *config.Config) error {
	dir := cfg.Cluster.DataDir
	for _, name := range []string{"raft.db", "fsm.db"} {
		if err := checkBolt(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	// raft.NewFileSnapshotStore keeps its snapshots in a "snapshots"
	// directory inside the directory it is given.
	if err := checkSnapshots(filepath.Join(dir, "snapshots", "snapshots")); err != nil {
		return err
	}
	if cfg.Keystore.FS != nil {
		return checkFSKeystore(cfg.Keystore.FS.Path)
	}
	return nil
}

// checkBolt verifies a bbolt file's page structure with boltcheck (bbolt's
// own Tx.Check faults on pages past the end of the file and loops on page
// cycles), then opens it read-only, which fails if another process holds
// it.
func checkBolt(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if fi.Size() == 0 {
		return corrupt(path, "empty file", nil)
	}
	if err := boltcheck.VerifyFile(path); err != nil {
		if errors.Is(err, boltcheck.ErrCorrupt) {
			return corrupt(path, "damaged bbolt database", err)
		}
		return fmt.Errorf("server: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("server: %s is in use by another process: %w", path, err)
		}
		return corrupt(path, "not a readable bbolt database", err)
	}
	return db.Close()
}

// snapshotMeta is the part of a Raft file snapshot's meta.json that
// describes state.bin.
type snapshotMeta struct {
	ID   string
	Size int64
	CRC  []byte
}

// checkSnapshots verifies every Raft snapshot directory (not the ".tmp"
// ones an interrupted snapshot leaves, which Raft ignores): a readable
// meta.json, and a state.bin of the recorded size and CRC-64.
func checkSnapshots(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		metaPath := filepath.Join(dir, e.Name(), "meta.json")
		b, err := os.ReadFile(metaPath)
		if err != nil {
			return corrupt(metaPath, "unreadable snapshot metadata", err)
		}
		var m snapshotMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return corrupt(metaPath, "invalid snapshot metadata", err)
		}
		statePath := filepath.Join(dir, e.Name(), "state.bin")
		f, err := os.Open(statePath)
		if err != nil {
			return corrupt(statePath, "unreadable snapshot", err)
		}
		h := crc64.New(crc64.MakeTable(crc64.ECMA))
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return corrupt(statePath, "unreadable snapshot", err)
		}
		if n != m.Size {
			return corrupt(statePath, fmt.Sprintf("snapshot has %d bytes, meta.json records %d", n, m.Size), nil)
		}
		if !bytes.Equal(h.Sum(nil), m.CRC) {
			return corrupt(statePath, "snapshot checksum does not match meta.json", nil)
		}
	}
	return nil
}

// checkFSKeystore parses every entry of an fs keystore directory: seal
// keys (the first and rotated ones) must be 32 bytes, every other entry a
// key version. Temporary files
// and names the fs store ignores are skipped.
func checkFSKeystore(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: keystore.fs: %w", err)
	}
	return checkFSEntries(dir, entries)
}

// checkFSEntries parses the listed entries of an fs keystore directory. An
// entry that is gone by the time it is read was deleted meanwhile, by a
// node that shares the keystore (a cluster's nodes do): not corruption.
func checkFSEntries(dir string, entries []os.DirEntry) error {
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if errors.Is(err, iofs.ErrNotExist) {
			continue
		}
		if err != nil {
			return corrupt(path, "unreadable keystore entry", err)
		}
		if e.Name() == enclave.SealName || strings.HasPrefix(e.Name(), enclave.SealName+".") { // rotated seal keys
			if len(b) != 32 {
				return corrupt(path, fmt.Sprintf("seal key has %d bytes, not 32", len(b)), nil)
			}
			clear(b)
			continue
		}
		kv, err := crypto.ParseKeyVersion(b)
		clear(b)
		if err != nil {
			return corrupt(path, "not a key", err)
		}
		kv.Zero()
	}
	return nil
}
