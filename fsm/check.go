package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keyraft/keyraft/internal/boltcheck"
)

// SnapshotError says why a snapshot was rejected. It wraps ErrBadSnapshot,
// so errors.Is(err, ErrBadSnapshot) holds for it.
type SnapshotError struct {
	// Reason is a sentence for the operator: what is wrong with the image.
	Reason string
}

func (e *SnapshotError) Error() string { return ErrBadSnapshot.Error() + ": " + e.Reason }

// Unwrap returns ErrBadSnapshot.
func (e *SnapshotError) Unwrap() error { return ErrBadSnapshot }

func badSnapshot(format string, args ...any) error {
	return &SnapshotError{Reason: fmt.Sprintf(format, args...)}
}

// requiredBuckets are the buckets every snapshot of format 1 has. Buckets
// added later (membership ones are replaced by PrepareRestore anyway) may
// be missing from older backups; Restore creates them.
var requiredBuckets = [][]byte{bucketMeta, bucketEnclaves, bucketKeys, bucketPolicies, bucketIdentities, bucketMembers, bucketRemoved}

// CheckSnapshot reports whether data is a snapshot that can be restored
// into the cluster whose state live is, without changing anything: it
// unpacks the image into a temporary directory beside live's state file and
// inspects it read-only. It returns an error wrapping ErrBadSnapshot (a
// *SnapshotError saying what is wrong) for a bad header or format, an image
// that is not a readable bbolt file, missing buckets, undecodable or
// misfiled records, a key record without a seal record or without sealed
// material, keys, policies or identities of enclaves that do not exist,
// and a seal record whose fingerprint differs from live's (a backup of
// another cluster: its sealed keys could never be unsealed here). Other
// errors are I/O failures. It is safe for concurrent use with everything
// on live.
func CheckSnapshot(live *FSM, data []byte) error {
	seal, _ := live.Seal()
	im, err := openImage(filepath.Dir(live.path), data, true)
	if err != nil {
		return err
	}
	defer im.close()
	var liveSeal *SealRecord
	if seal.ID != "" {
		liveSeal = &seal
	}
	return im.db.View(func(tx *bolt.Tx) error { return checkImage(tx, liveSeal) })
}

// imageBody checks a snapshot's header and returns the bbolt image after it.
func imageBody(data []byte) ([]byte, error) {
	n := len(snapshotMagic)
	if len(data) < n+1 || !bytes.Equal(data[:n], snapshotMagic) {
		return nil, badSnapshot("bad header: not a keyraft snapshot")
	}
	if data[n] != formatVersion {
		return nil, badSnapshot("format %d, this build reads %d", data[n], formatVersion)
	}
	if len(data) == n+1 {
		return nil, badSnapshot("the snapshot holds no state image")
	}
	return data[n+1:], nil
}

// image is a snapshot's bbolt file unpacked into a temporary directory.
type image struct {
	dir string
	db  *bolt.DB
}

func openImage(dir string, data []byte, readOnly bool) (*image, error) {
	body, err := imageBody(data)
	if err != nil {
		return nil, err
	}
	// bbolt trusts its pages: a cycle in an untrusted image would make it
	// loop forever, so the page structure is walked first.
	if err := boltcheck.Verify(body); err != nil {
		return nil, badSnapshot("not a readable bbolt file: %v", err)
	}
	tmp, err := os.MkdirTemp(dir, ".snapshot-")
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	path := filepath.Join(tmp, "image.db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	db, err := openBolt(path, readOnly)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &image{dir: tmp, db: db}, nil
}

// openBolt opens an untrusted bbolt file: a fault while reading it (a
// truncated or garbled image) is turned into an ErrBadSnapshot error.
func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, badSnapshot("the state image is not a readable bbolt file: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, ReadOnly: readOnly})
	if err != nil {
		return nil, badSnapshot("the state image is not a readable bbolt file: %v", err)
	}
	return db, nil
}

func (im *image) close() {
	im.db.Close()
	os.RemoveAll(im.dir)
}

// checkImage validates an image's structure and metadata; liveSeal, if
// not nil, is the seal record the image's must match.
func checkImage(tx *bolt.Tx, liveSeal *SealRecord) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = badSnapshot("the state image is corrupt: %v", r)
		}
	}()
	for _, b := range requiredBuckets {
		if tx.Bucket(b) == nil {
			return badSnapshot("bucket %q is missing", b)
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(metaFormat)
	if len(v) != 8 {
		return badSnapshot("the state image has no format record")
	}
	if got := binary.BigEndian.Uint64(v); got != formatVersion {
		return badSnapshot("state format %d, this build reads %d", got, formatVersion)
	}
	if v := meta.Get(metaApplied); v != nil && len(v) != 8 {
		return badSnapshot("the applied index record is malformed")
	}
	var seal *SealRecord
	if v := meta.Get(metaSeal); v != nil {
		seal = new(SealRecord)
		if err := json.Unmarshal(v, seal); err != nil || seal.ID == "" {
			return badSnapshot("the seal record is malformed")
		}
		if liveSeal != nil && seal.ID != liveSeal.ID && !slices.Contains(liveSeal.Previous, seal.ID) {
			return badSnapshot("it was sealed with seal key %s, this cluster's is %s: a backup of another cluster cannot be restored here", seal.ID, liveSeal.ID)
		}
	}
	if v := meta.Get(metaRestore); v != nil {
		if err := json.Unmarshal(v, new(RestoreMarker)); err != nil {
			return badSnapshot("the restore marker is malformed")
		}
	}
	return checkRecords(tx, seal)
}

// checkRecords checks that every record decodes, is filed under its own
// name, and belongs to an enclave that exists; and that sealed key records
// come with a seal record.
func checkRecords(tx *bolt.Tx, seal *SealRecord) error {
	enclaves := map[string]bool{DefaultEnclave: true}
	err := eachRecord(tx, bucketEnclaves, func(k string, r EnclaveRecord) error {
		if r.Name == "" || r.Name != k {
			return badSnapshot("enclave entry %q holds the record of %q", k, r.Name)
		}
		enclaves[k] = true
		return nil
	})
	if err != nil {
		return err
	}
	// scoped checks an entry "enclave\x00name" of a per-enclave bucket.
	scoped := func(what, k, name string) error {
		e, n, ok := strings.Cut(k, "\x00")
		if !ok || n == "" || n != name {
			return badSnapshot("%s entry %q holds the record of %q", what, k, name)
		}
		if !enclaves[e] {
			return badSnapshot("%s %q belongs to enclave %q, which does not exist", what, n, e)
		}
		return nil
	}
	err = eachRecord(tx, bucketKeys, func(k string, r KeyRecord) error {
		if err := scoped("key", k, r.Name); err != nil {
			return err
		}
		if seal == nil {
			return badSnapshot("key %q of enclave %q is sealed, but the snapshot has no seal record", r.Name, enclaveOf(k))
		}
		if len(r.Sealed) == 0 {
			return badSnapshot("key %q of enclave %q has no sealed material", r.Name, enclaveOf(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = eachRecord(tx, bucketPolicies, func(k string, r PolicyRecord) error { return scoped("policy", k, r.Name) })
	if err != nil {
		return err
	}
	err = eachRecord(tx, bucketIdentities, func(k string, r IdentityRecord) error { return scoped("identity", k, r.Identity) })
	if err != nil {
		return err
	}
	if tx.Bucket(bucketProtected) != nil { // older backups have none
		if err := eachRecord(tx, bucketProtected, func(k string, p Protection) error { return scoped("protection", k, p.Name) }); err != nil {
			return err
		}
	}
	if tx.Bucket(bucketVersions) != nil { // older backups have none
		if err := eachRecord(tx, bucketVersions, func(k string, v KeyVersions) error { return scoped("key versions", k, v.Name) }); err != nil {
			return err
		}
	}
	if tx.Bucket(bucketDeleted) != nil { // older backups have none
		if err := eachRecord(tx, bucketDeleted, func(k string, d Deletion) error { return scoped("pending deletion", k, d.Name) }); err != nil {
			return err
		}
	}
	err = eachRecord(tx, bucketMembers, func(k string, m Member) error {
		if m.ID != k {
			return badSnapshot("member entry %q holds the record of %q", k, m.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketRemoved).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return badSnapshot("removed member entry %q is malformed", k)
		}
		return nil
	})
}

func eachRecord[T any](tx *bolt.Tx, bucket []byte, fn func(key string, r T) error) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return badSnapshot("%s entry %q is not a valid record: %v", bucket, k, err)
		}
		return fn(string(k), r)
	})
}
