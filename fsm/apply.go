package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta       = []byte("meta")
	bucketEnclaves   = []byte("enclaves")
	bucketKeys       = []byte("keys")
	bucketPolicies   = []byte("policies")
	bucketIdentities = []byte("identities")
	bucketMembers    = []byte("members")
	bucketRemoved    = []byte("removed")
	bucketRevoked    = []byte("revoked")

	metaApplied = []byte("applied")
	metaSeal    = []byte("seal")
	metaFormat  = []byte("format")
)

// formatVersion is the layout version of the bbolt file and of snapshots.
const formatVersion = 1

var allBuckets = [][]byte{bucketMeta, bucketEnclaves, bucketKeys, bucketPolicies, bucketIdentities, bucketMembers, bucketRemoved, bucketRevoked, bucketProtected, bucketDeleted, bucketVersions}

// ErrFatal marks an Apply failure that must stop the node: an undecodable
// command or a failed write of the state file. Continuing would let this
// replica diverge from the others.
var ErrFatal = errors.New("fsm: fatal apply error")

// Apply applies the command data committed at Raft index. It returns the
// command's deterministic result (nil, ErrExists, ErrNotFound, ErrRemoved)
// and, separately, a fatal error wrapping ErrFatal (and ErrUnknownCommand
// for undecodable data) on which the caller must stop the node.
// Indexes at or below the applied index are skipped, so replays after a
// restart are harmless. Apply must not be called concurrently with itself,
// Restore or Close.
//
// Readers never wait for the disk: the command is planned under the read
// lock (planning only reads), the bbolt transaction commits and fsyncs
// without any FSM lock (bbolt serializes writers itself, and snapshots read
// their own transaction), and the write lock is taken only to switch the
// in-memory state, which takes microseconds. Until then readers see the
// state, and the applied index, of the previous command.
func (f *FSM) Apply(index uint64, data []byte) (result error, fatal error) {
	cmd, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w at index %d: %w", ErrFatal, index, err)
	}
	f.mu.RLock()
	if index <= f.st.applied {
		f.mu.RUnlock()
		return nil, nil
	}
	ch := &change{}
	result = f.st.plan(cmd, index, ch)
	db := f.db
	f.mu.RUnlock()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := ch.write(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaApplied, u64(index))
	})
	if err != nil {
		return nil, fmt.Errorf("%w at index %d: write state: %w", ErrFatal, index, err)
	}
	f.mu.Lock()
	for _, m := range ch.mem {
		m()
	}
	f.st.applied = index
	marker := f.st.restore
	f.mu.Unlock()
	if _, ok := cmd.(MarkRestore); ok {
		f.releaseHoldBack(marker)
	}
	f.applies[cmd.Type()].Add(1)
	f.signalApplied()
	f.notify(ch.events)
	return result, nil
}

// change collects what one command does: bbolt writes, the matching memory
// mutations (run only after the bbolt transaction commits) and events.
type change struct {
	puts   []kv
	dels   []kv
	mem    []func()
	events []Event
}

type kv struct {
	bucket []byte
	key    string
	value  []byte
}

func (c *change) put(bucket []byte, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are stored; this cannot happen
		panic(fmt.Sprintf("fsm: marshal %T: %v", v, err))
	}
	c.puts = append(c.puts, kv{bucket, key, b})
}

func (c *change) del(bucket []byte, key string) {
	c.dels = append(c.dels, kv{bucket: bucket, key: key})
}

func (c *change) do(fn func()) { c.mem = append(c.mem, fn) }

func (c *change) emit(e Event) { c.events = append(c.events, e) }

func (c *change) write(tx *bolt.Tx) error {
	for _, d := range c.dels {
		if err := tx.Bucket(d.bucket).Delete([]byte(d.key)); err != nil {
			return err
		}
	}
	for _, p := range c.puts {
		if err := tx.Bucket(p.bucket).Put([]byte(p.key), p.value); err != nil {
			return err
		}
	}
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func ek(enclave, name string) string { return enclave + "\x00" + name }
