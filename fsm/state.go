package fsm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
)

// Errors returned by Apply (deterministically: every replica returns the same
// error for the same command and state).
var (
	ErrExists   = errors.New("fsm: already exists")
	ErrNotFound = errors.New("fsm: does not exist")
	ErrRemoved  = errors.New("fsm: member id was removed and cannot be reused")
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	KeyRemoved EventKind = iota + 1
	KeyPut
	EnclaveDeleted
	// MembersChanged: a member was added, re-addressed or removed (Name is
	// its id). Observers re-check who may use the cluster port.
	MembersChanged
	// SealChanged: a seal-key rotation began or finished. Nodes load the
	// seal keys the state now names and drop those it no longer names.
	SealChanged
)

// Event tells observers that state changed. Observers run synchronously at
// the end of Apply, outside the FSM's lock.
type Event struct {
	Kind    EventKind
	Enclave string
	Name    string
}

// FSM is the replicated state. Reads are served from memory under a
// read lock; Apply, Restore and Close are serialized by the caller (Raft
// calls them from one goroutine). All methods are safe for concurrent use.
type FSM struct {
	path string
	log  hclog.Logger

	mu sync.RWMutex
	db *bolt.DB
	st *state

	obsMu     sync.Mutex
	observers []func(Event)

	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced whenever applied grows

	applies  applyCounts
	holdback atomic.Uint64 // see HoldBack
}

// Open opens (creating if needed) the FSM's bbolt file at path and loads its
// state into memory.
func Open(path string, logger hclog.Logger) (*FSM, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &FSM{path: path, log: logger.Named("fsm"), appliedCh: make(chan struct{})}
	db, st, err := openDB(path)
	if err != nil {
		return nil, err
	}
	f.db, f.st = db, st
	if err := f.loadHoldBack(); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

func openDB(path string) (*bolt.DB, *state, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, nil, fmt.Errorf("fsm: open %s: %w", path, err)
	}
	st := newState()
	if err := db.Update(func(tx *bolt.Tx) error { return st.load(tx) }); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("fsm: load %s: %w", path, err)
	}
	return db, st, nil
}

// Close closes the bbolt file.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// Subscribe registers fn to be called after every state change it cares
// about. fn must not call back into Apply.
func (f *FSM) Subscribe(fn func(Event)) {
	f.obsMu.Lock()
	defer f.obsMu.Unlock()
	f.observers = append(f.observers, fn)
}

func (f *FSM) notify(events []Event) {
	if len(events) == 0 {
		return
	}
	f.obsMu.Lock()
	obs := append([]func(Event){}, f.observers...)
	f.obsMu.Unlock()
	for _, e := range events {
		for _, fn := range obs {
			fn(e)
		}
	}
}

// AppliedIndex returns the Raft index of the last applied command.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.applied
}

// WaitApplied blocks until the FSM has applied index or ctx is done, in
// which case it returns ctx.Err().
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.appliedMu.Lock()
		ch := f.appliedCh
		f.appliedMu.Unlock()
		if f.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FSM) signalApplied() {
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
}

// Key returns the record of a key.
func (f *FSM) Key(enclave, name string) (KeyRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.keys[enclave][name]
	return r, ok
}

// Keys returns the records of an enclave's keys whose names start with
// prefix, sorted by name.
func (f *FSM) Keys(enclave, prefix string) []KeyRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []KeyRecord
	for name, r := range f.st.keys[enclave] {
		if strings.HasPrefix(name, prefix) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Enclave returns an enclave's record.
func (f *FSM) Enclave(name string) (EnclaveRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.enclaves[name]
	return r, ok
}

// Enclaves returns every enclave, sorted by name.
func (f *FSM) Enclaves() []EnclaveRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]EnclaveRecord, 0, len(f.st.enclaves))
	for _, r := range f.st.enclaves {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Policy returns a policy of an enclave.
func (f *FSM) Policy(enclave, name string) (PolicyRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.policies[enclave][name]
	return r, ok
}

// Policies returns an enclave's policies, sorted by name.
func (f *FSM) Policies(enclave string) []PolicyRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]PolicyRecord, 0, len(f.st.policies[enclave]))
	for _, r := range f.st.policies[enclave] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Identity returns an identity's assignment in an enclave.
func (f *FSM) Identity(enclave, id string) (IdentityRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.identities[enclave][id]
	return r, ok
}

// Identities returns an enclave's identity assignments, sorted.
func (f *FSM) Identities(enclave string) []IdentityRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]IdentityRecord, 0, len(f.st.identities[enclave]))
	for _, r := range f.st.identities[enclave] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// Seal returns the seal key fingerprint, if one was recorded.
func (f *FSM) Seal() (SealRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.seal == nil {
		return SealRecord{}, false
	}
	return *f.st.seal, true
}

// Members returns the recorded cluster members, sorted by id.
func (f *FSM) Members() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Member, 0, len(f.st.members))
	for _, m := range f.st.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns a member's record.
func (f *FSM) Member(id string) (Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.st.members[id]
	return m, ok
}

// Removed reports whether a member id was removed (and so can't be reused).
func (f *FSM) Removed(id string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.st.removed[id]
	return ok
}

// Revoked reports whether identity belonged to a removed member and has not
// been re-authorized since (by adding a member with it).
func (f *FSM) Revoked(identity string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.st.revoked[identity]
	return ok
}

// IsMemberIdentity reports whether a current member presents identity.
func (f *FSM) IsMemberIdentity(identity string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, m := range f.st.members {
		if m.Identity != "" && m.Identity == identity {
			return true
		}
	}
	return false
}

// HasMembers reports whether the state records any member: a node that
// has not caught up with its cluster yet has none.
func (f *FSM) HasMembers() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.members) > 0
}
