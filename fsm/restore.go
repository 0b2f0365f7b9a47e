package fsm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// membershipBuckets hold who belongs to the cluster. A restore never
// changes them: PrepareRestore replaces the backup's with the live ones.
// The revoked bucket (certificate identities of removed members) belongs
// to them too.
var membershipBuckets = [][]byte{bucketMembers, bucketRemoved, bucketRevoked}

// restoreBase is what PrepareRestore keeps of the live state.
type restoreBase struct {
	applied uint64
	seal    []byte                       // raw meta seal entry; nil if none
	buckets map[string]map[string][]byte // membership buckets, raw
}

// PrepareRestore checks a snapshot like CheckSnapshot (same errors, wrapping
// ErrBadSnapshot) and rewrites its image so that the cluster whose state
// live is can install it through Raft's user-snapshot restore on every
// node, including nodes that install it later by InstallSnapshot or
// restore it again when they restart:
//
//   - its applied index becomes live's applied index. Raft places the
//     restore at an index above its last log index, which is at least
//     live's applied index, so every later entry is above the image's
//     applied index and gets applied (with the backup's index, writes up to
//     that index would be skipped on every node while being acknowledged);
//   - its membership (members, removed ids, revoked identities) and its seal
//     record are replaced by live's: a restore never changes membership;
//   - every key record gets Index = live's applied index, and a fresh
//     RestoreMarker is set: the restored records are unconfirmed until the
//     leader reconciled them with the keystore (ReconcileKeys).
//
// The caller should have every committed entry applied to live first (a
// Raft barrier), so the membership it copies is current. It returns the
// rewritten snapshot. It is safe for concurrent use with everything on
// live.
func PrepareRestore(live *FSM, data []byte) ([]byte, error) {
	base, err := live.restoreBase()
	if err != nil {
		return nil, err
	}
	if _, rotating := live.SealNext(); rotating {
		return nil, badSnapshot("a seal-key rotation is in progress; restore when it has finished")
	}
	var liveSeal *SealRecord
	if base.seal != nil {
		liveSeal = new(SealRecord)
		if err := json.Unmarshal(base.seal, liveSeal); err != nil {
			return nil, fmt.Errorf("fsm: prepare restore: live seal record: %w", err)
		}
	}
	im, err := openImage(filepath.Dir(live.path), data, false)
	if err != nil {
		return nil, err
	}
	defer im.close()
	if err := im.db.View(func(tx *bolt.Tx) error { return checkImage(tx, liveSeal) }); err != nil {
		return nil, err
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	marker := RestoreMarker{ID: hex.EncodeToString(nonce[:]), Applied: base.applied}
	if err := im.db.Update(func(tx *bolt.Tx) error { return rewriteImage(tx, base, marker) }); err != nil {
		return nil, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(snapshotMagic)
	buf.WriteByte(formatVersion)
	if err := im.db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(&buf); return err }); err != nil {
		return nil, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	live.log.Info("prepared a snapshot for restore", "restore", marker.ID, "applied", marker.Applied)
	return buf.Bytes(), nil
}

// restoreBase copies, in one read transaction, the parts of the live state
// that a restore keeps.
func (f *FSM) restoreBase() (restoreBase, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return restoreBase{}, errors.New("fsm: prepare restore: state is closed")
	}
	base := restoreBase{applied: f.st.applied, buckets: map[string]map[string][]byte{}}
	err := f.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaSeal); v != nil {
			base.seal = bytes.Clone(v)
		}
		for _, name := range membershipBuckets {
			m := map[string][]byte{}
			if b := tx.Bucket(name); b != nil {
				if err := b.ForEach(func(k, v []byte) error { m[string(k)] = bytes.Clone(v); return nil }); err != nil {
					return err
				}
			}
			base.buckets[string(name)] = m
		}
		return nil
	})
	if err != nil {
		return restoreBase{}, fmt.Errorf("fsm: prepare restore: read live state: %w", err)
	}
	return base, nil
}

func rewriteImage(tx *bolt.Tx, base restoreBase, marker RestoreMarker) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(metaApplied, u64(base.applied)); err != nil {
		return err
	}
	if base.seal != nil {
		if err := meta.Put(metaSeal, base.seal); err != nil {
			return err
		}
	}
	// A backup taken during a seal rotation: the live cluster's seal keys
	// decide; records sealed with a key it no longer has are reloaded
	// from the keystore by the reconciliation.
	if err := meta.Delete(metaSealNext); err != nil {
		return err
	}
	m, err := json.Marshal(marker)
	if err != nil {
		return err
	}
	if err := meta.Put(metaRestore, m); err != nil {
		return err
	}
	for _, name := range membershipBuckets {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		for k, v := range base.buckets[string(name)] {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
	}
	// Every restored key record takes the image's applied index, so that
	// it is told apart from records written after the restore.
	keys := tx.Bucket(bucketKeys)
	updates := map[string][]byte{}
	err = keys.ForEach(func(k, v []byte) error {
		var r KeyRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		r.Index = base.applied
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		updates[string(k)] = b
		return nil
	})
	if err != nil {
		return err
	}
	for k, v := range updates {
		if err := keys.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}
