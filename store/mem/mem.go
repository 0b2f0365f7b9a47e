// Package mem is an in-memory store.Store for tests of the layers above the
// keystore. Besides the Store contract it lets a test simulate an unreachable
// keystore, inject per-call failures or delays, and count calls per method,
// so that a test can assert, for example, that the hot path makes no
// keystore calls at all.
package mem

import (
	"context"
	"fmt"
	"slices"
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
type Calls struct {
	Create, Get, Delete, List, Status int
}

// Total returns the number of calls of all methods.
func (c Calls) Total() int { return c.Create + c.Get + c.Delete + c.List + c.Status }

// Hook is called at the start of every counted Store method, after the
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
	entries map[string][]byte
	closed  bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty, reachable Store.
func New() *Store {
	return &Store{entries: make(map[string][]byte)}
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
	if err := s.enter(ctx, OpCreate, name); err != nil {
		return err
	}
	if err := invalidName(OpCreate, name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.entries[name]; ok {
		return fmt.Errorf("mem: Create %q: %w", name, store.ErrExists)
	}
	v := make([]byte, len(value))
	copy(v, value)
	s.entries[name] = v
	return nil
}

// Get returns a copy of the value stored under name. It returns an error
// wrapping store.ErrNotFound if name does not exist, store.ErrInvalidName if
// name is empty, and otherwise fails like Create.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := s.enter(ctx, OpGet, name); err != nil {
		return nil, err
	}
	if err := invalidName(OpGet, name); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	v, ok := s.entries[name]
	if !ok {
		return nil, fmt.Errorf("mem: Get %q: %w", name, store.ErrNotFound)
	}
	return slices.Clone(v), nil
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
	v, ok := s.entries[name]
	if !ok {
		return fmt.Errorf("mem: Delete %q: %w", name, store.ErrNotFound)
	}
	clear(v)
	delete(s.entries, name)
	return nil
}

// List returns the names starting with prefix, sorted ascending; an empty
// prefix lists all. It fails like Create, never with ErrInvalidName.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.enter(ctx, OpList, prefix); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	names := make([]string, 0, len(s.entries))
	for n := range s.entries {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
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
	for _, v := range s.entries {
		clear(v)
	}
	s.entries = nil
	s.closed = true
	return nil
}
