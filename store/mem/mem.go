// Package mem is an in-memory store.Store for tests of the layers above the
// keystore. Besides the Store contract it lets a test simulate an unreachable
// keystore, inject per-call failures or delays, and count calls per method,
// so that a test can assert, for example, that the hot path makes no
// keystore calls at all.
//
// Store implements store.Versioned: every value stored (by Create or by the
// test helper Replace) gets a new version, a decimal number drawn from a
// counter shared by all Stores, so no two values ever share a version.
package mem

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyraft/keyraft/store"
)

// Op identifies a Store method, for call counting and hooks.
type Op int

// The Store methods. Close is neither counted nor hooked.
const (
	OpCreate Op = iota
	OpGet
	OpDelete
	OpList
	OpStatus
	numOps
)

// String returns the method name, e.g. "Create".
func (o Op) String() string {
	switch o {
	case OpCreate:
		return "Create"
	case OpGet:
		return "Get"
	case OpDelete:
		return "Delete"
	case OpList:
		return "List"
	case OpStatus:
		return "Status"
	default:
		return fmt.Sprintf("Op(%d)", int(o))
	}
}

// Calls counts Store method invocations. A call is counted when it is made,
// whatever its outcome (including a cancelled context or an injected failure).
// The store.Versioned methods count as the methods they extend:
// CreateVersion as Create, GetVersion as Get, ListVersions as List.
type Calls struct {
	Create, Get, Delete, List, Status int
}

// Total returns the number of calls of all methods.
func (c Calls) Total() int { return c.Create + c.Get + c.Delete + c.List + c.Status }

// Hook is called at the start of every counted Store method (the
// store.Versioned methods pass the Op they are counted as), after the
// context check, with the method and the entry name ("" for Status; the
// prefix for List). A non-nil error fails the call: the Store returns it
// wrapped, so errors.Is sees it (return store.ErrUnreachable to simulate an
// outage of one method). A Hook may block, for example on a channel, to hold
// calls in flight; the Store holds no lock while it runs.
type Hook func(ctx context.Context, op Op, name string) error

// Store is an in-memory store.Store. The zero value is not usable; call New.
//
// All methods are safe for concurrent use. Values are copied on Create and on
// Get, so callers may reuse or zero their buffers.
type Store struct {
	calls       [numOps]atomic.Int64
	unreachable atomic.Bool
	hook        atomic.Pointer[Hook]

	mu      sync.RWMutex
	entries map[string]*entry
	closed  bool
}

// entry is one stored value and its version.
type entry struct {
	value   []byte
	version string
}

// versions numbers every value stored by any Store.
var versions atomic.Uint64

// newEntry returns an entry holding a copy of value under a new version.
func newEntry(value []byte) *entry {
	v := make([]byte, len(value)) // never nil, even for a nil value
	copy(v, value)
	return &entry{value: v, version: strconv.FormatUint(versions.Add(1), 10)}
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Versioned = (*Store)(nil)
)

// New returns an empty, reachable Store.
func New() *Store {
	return &Store{entries: make(map[string]*entry)}
}

// SetUnreachable makes every subsequent call (until SetUnreachable(false))
// fail with an error wrapping store.ErrUnreachable, without changing the
// stored entries. It is safe to call concurrently with Store methods.
func (s *Store) SetUnreachable(unreachable bool) { s.unreachable.Store(unreachable) }

// SetHook installs h, replacing any previous hook; nil removes it. It is safe
// to call concurrently with Store methods.
func (s *Store) SetHook(h Hook) {
	if h == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&h)
}

// Calls returns the number of calls made per method since New or the last
// ResetCalls. It never fails and is safe for concurrent use.
func (s *Store) Calls() Calls {
	return Calls{
		Create: int(s.calls[OpCreate].Load()),
		Get:    int(s.calls[OpGet].Load()),
		Delete: int(s.calls[OpDelete].Load()),
		List:   int(s.calls[OpList].Load()),
		Status: int(s.calls[OpStatus].Load()),
	}
}

// ResetCalls sets all call counters to zero.
func (s *Store) ResetCalls() {
	for i := range s.calls {
		s.calls[i].Store(0)
	}
}

// Len returns the number of stored entries, without counting as a call.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// Replace stores a copy of value under name with a new version, replacing
// (and zeroing) the previous value, as an operator replacing a key behind
// the cluster's back would; if name does not exist, Replace creates it. It
// is a test helper: it is not counted, runs no hook, ignores SetUnreachable
// and never fails. After Close it does nothing.
func (s *Store) Replace(name string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if old, ok := s.entries[name]; ok {
		clear(old.value)
	}
	s.entries[name] = newEntry(value)
}

// enter counts the call and applies the context, outage and hook checks
// shared by every method. It returns a non-nil error if the call must fail.
func (s *Store) enter(ctx context.Context, op Op, name string) error {
	s.calls[op].Add(1)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: %s: %w", op, err)
	}
	if s.unreachable.Load() {
		return fmt.Errorf("mem: %s: %w", op, store.ErrUnreachable)
	}
	if h := s.hook.Load(); h != nil {
		if err := (*h)(ctx, op, name); err != nil {
			return fmt.Errorf("mem: %s %q: %w", op, name, err)
		}
	}
	return nil
}

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("mem: store is closed: %w", store.ErrUnreachable)

func invalidName(op Op, name string) error {
	if name == "" {
		return fmt.Errorf("mem: %s: empty name: %w", op, store.ErrInvalidName)
	}
	return nil
}

// Create stores a copy of value under name. It returns an error wrapping
// store.ErrExists if name exists, store.ErrInvalidName if name is empty,
// store.ErrUnreachable if the store is closed or set unreachable, ctx.Err()
// if ctx is done, or the hook's error.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	_, err := s.CreateVersion(ctx, name, value)
	return err
}

// CreateVersion is Create that also returns the new value's version. It is
// counted and hooked as Create, fails exactly like it and returns "" with
// every error.
func (s *Store) CreateVersion(ctx context.Context, name string, value []byte) (string, error) {
	if err := s.enter(ctx, OpCreate, name); err != nil {
		return "", err
	}
	if err := invalidName(OpCreate, name); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errClosed
	}
	if _, ok := s.entries[name]; ok {
		return "", fmt.Errorf("mem: Create %q: %w", name, store.ErrExists)
	}
	e := newEntry(value)
	s.entries[name] = e
	return e.version, nil
}

// Get returns a copy of the value stored under name. It returns an error
// wrapping store.ErrNotFound if name does not exist, store.ErrInvalidName if
// name is empty, and otherwise fails like Create.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	value, _, err := s.GetVersion(ctx, name)
	return value, err
}

// GetVersion is Get that also returns the value's version. It is counted
// and hooked as Get, fails exactly like it and returns "" with every error.
func (s *Store) GetVersion(ctx context.Context, name string) ([]byte, string, error) {
	if err := s.enter(ctx, OpGet, name); err != nil {
		return nil, "", err
	}
	if err := invalidName(OpGet, name); err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, "", errClosed
	}
	e, ok := s.entries[name]
	if !ok {
		return nil, "", fmt.Errorf("mem: Get %q: %w", name, store.ErrNotFound)
	}
	return slices.Clone(e.value), e.version, nil
}

// Delete removes name and zeroes its stored value. It returns an error
// wrapping store.ErrNotFound if name does not exist, store.ErrInvalidName if
// name is empty, and otherwise fails like Create.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.enter(ctx, OpDelete, name); err != nil {
		return err
	}
	if err := invalidName(OpDelete, name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	e, ok := s.entries[name]
	if !ok {
		return fmt.Errorf("mem: Delete %q: %w", name, store.ErrNotFound)
	}
	clear(e.value)
	delete(s.entries, name)
	return nil
}

// List returns the names starting with prefix, sorted ascending; an empty
// prefix lists all. It fails like Create, never with ErrInvalidName.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	entries, err := s.ListVersions(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return store.Names(entries), nil
}

// ListVersions is List that also returns every entry's version, sorted by
// name. It is counted and hooked as List and fails exactly like it.
func (s *Store) ListVersions(ctx context.Context, prefix string) ([]store.Entry, error) {
	if err := s.enter(ctx, OpList, prefix); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	out := make([]store.Entry, 0, len(s.entries))
	for n, e := range s.entries {
		if strings.HasPrefix(n, prefix) {
			out = append(out, store.Entry{Name: n, Version: e.version})
		}
	}
	slices.SortFunc(out, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Status reports the store reachable with the time the check took. It fails
// like Create.
func (s *Store) Status(ctx context.Context) (store.State, error) {
	start := time.Now()
	if err := s.enter(ctx, OpStatus, ""); err != nil {
		return store.State{}, err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.State{}, errClosed
	}
	return store.State{Latency: time.Since(start)}, nil
}

// Close zeroes and drops every entry; afterwards every method fails with an
// error wrapping store.ErrUnreachable. Close is idempotent and returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		clear(e.value)
	}
	s.entries = nil
	s.closed = true
	return nil
}
