// Package store defines the keystore contract: the durable root of key material
// that Keyraft caches (sealed) in its replicated state. Backends live in the
// sub-packages fs (a KES-compatible directory, the embedded default), aws
// (AWS Secrets Manager) and mem (tests).
//
// A keystore holds opaque values under names. It knows nothing of enclaves,
// sealing or the KES key format: the enclave package maps key names to store
// names and encodes values.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns (possibly wrapped) so that callers can use errors.Is.
var (
	// ErrExists is returned by Create when the name is already taken.
	ErrExists = errors.New("store: entry already exists")
	// ErrNotFound is returned by Get and Delete when the name does not exist.
	ErrNotFound = errors.New("store: entry does not exist")
	// ErrUnreachable is returned (wrapped) when the backend cannot be reached at
	// all: a network error, a timeout, a closed connection. Callers treat it as
	// "offline" (KES reports 504 on /v1/ready).
	ErrUnreachable = errors.New("store: keystore is not reachable")
	// ErrInvalidName is returned when a backend cannot store the given name.
	ErrInvalidName = errors.New("store: invalid entry name")
)

// State describes a successful health check.
type State struct {
	// Latency is how long the health check took.
	Latency time.Duration
}

// Store is a keystore backend.
//
// All methods are safe for concurrent use. Every method honours ctx: it
// returns (a wrapped) ctx.Err() or ErrUnreachable when the deadline passes.
// A failed Create or Delete leaves the store unchanged or fully changed, never
// half-written.
type Store interface {
	// Create stores value under name. It returns ErrExists if name exists.
	Create(ctx context.Context, name string, value []byte) error
	// Get returns the value stored under name, or ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Delete removes name. It returns ErrNotFound if name does not exist.
	Delete(ctx context.Context, name string) error
	// List returns every name that starts with prefix, sorted ascending.
	// An empty prefix lists everything.
	List(ctx context.Context, prefix string) ([]string, error)
	// Status checks that the backend is reachable and authenticated, using
	// the cheapest real call the backend has. It returns an error wrapping
	// ErrUnreachable when the backend cannot be reached.
	Status(ctx context.Context) (State, error)
	// Close releases the backend's resources.
	Close() error
}

// Entry is one name in a versioned listing.
type Entry struct {
	// Name is the entry's name.
	Name string
	// Version identifies the entry's current value: it changes whenever the
	// value is replaced (AWS: the AWSCURRENT version ID; fs: the file's
	// modification time and inode). Empty means the backend cannot tell.
	Version string
}

// Versioned is implemented by keystores that can tell when an entry's value
// was replaced behind Keyraft's back (by an operator or another KES). The
// cluster records the version of every value it caches and reloads an
// entry whose listed version differs. Use the package functions
// CreateVersion, GetVersion and ListVersions, which fall back to the plain
// methods (and an empty version) for a Store that is not Versioned.
//
// The methods have the contracts of Create, Get and List; a version is
// compared only for equality and only with versions of the same entry.
type Versioned interface {
	// CreateVersion is Create that also returns the version of the value
	// it stored ("" when it cannot know, e.g. after a settled retry).
	CreateVersion(ctx context.Context, name string, value []byte) (string, error)
	// GetVersion is Get that also returns the version of the value it read.
	GetVersion(ctx context.Context, name string) ([]byte, string, error)
	// ListVersions is List with each entry's current version, sorted by name.
	ListVersions(ctx context.Context, prefix string) ([]Entry, error)
}

// CreateVersion calls st's CreateVersion, or Create with an empty version.
func CreateVersion(ctx context.Context, st Store, name string, value []byte) (string, error) {
	if v, ok := st.(Versioned); ok {
		return v.CreateVersion(ctx, name, value)
	}
	return "", st.Create(ctx, name, value)
}

// GetVersion calls st's GetVersion, or Get with an empty version.
func GetVersion(ctx context.Context, st Store, name string) ([]byte, string, error) {
	if v, ok := st.(Versioned); ok {
		return v.GetVersion(ctx, name)
	}
	value, err := st.Get(ctx, name)
	return value, "", err
}

// ListVersions calls st's ListVersions, or List with empty versions.
func ListVersions(ctx context.Context, st Store, prefix string) ([]Entry, error) {
	if v, ok := st.(Versioned); ok {
		return v.ListVersions(ctx, prefix)
	}
	names, err := st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(names))
	for i, n := range names {
		out[i] = Entry{Name: n}
	}
	return out, nil
}

// Names returns the names of entries, in order.
func Names(entries []Entry) []string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	return names
}

// Recoverable is implemented by keystores with a recovery window of their
// own (AWS Secrets Manager): a deleted entry stays recoverable for a while
// and is then destroyed by the backend. Keyraft's recovery window
// (protection.recovery_window) uses it so that the keystore agrees with the
// cluster on what is deleted. Use the package functions ScheduleDelete,
// RestoreDeleted and Purge, which fall back to the plain methods for a
// Store that is not Recoverable: such a store keeps the entry untouched
// until the cluster purges it.
type Recoverable interface {
	// ScheduleDelete makes name unreadable (Get answers ErrNotFound, List
	// leaves it out) and has the backend destroy it after window, which the
	// backend may round up to the bounds it supports (AWS: 7 to 30 days).
	// It returns ErrNotFound if name does not exist or is already scheduled.
	ScheduleDelete(ctx context.Context, name string, window time.Duration) error
	// RestoreDeleted cancels a scheduled deletion, so Get reads the value
	// again. Restoring an entry that is not scheduled for deletion
	// succeeds; ErrNotFound means the entry is gone for good.
	RestoreDeleted(ctx context.Context, name string) error
	// Purge destroys name at once, whether scheduled for deletion or not.
	// It returns ErrNotFound if name does not exist at all.
	Purge(ctx context.Context, name string) error
}

// ScheduleDelete calls st's ScheduleDelete. A Store that is not
// Recoverable keeps the entry as it is: it returns nil if the entry exists
// and ErrNotFound otherwise.
func ScheduleDelete(ctx context.Context, st Store, name string, window time.Duration) error {
	if r, ok := st.(Recoverable); ok {
		return r.ScheduleDelete(ctx, name, window)
	}
	v, err := st.Get(ctx, name)
	clear(v)
	return err
}

// RestoreDeleted calls st's RestoreDeleted. For a Store that is not
// Recoverable the entry was never touched: it returns nil if the entry
// exists and ErrNotFound otherwise.
func RestoreDeleted(ctx context.Context, st Store, name string) error {
	if r, ok := st.(Recoverable); ok {
		return r.RestoreDeleted(ctx, name)
	}
	v, err := st.Get(ctx, name)
	clear(v)
	return err
}

// Purge calls st's Purge, or Delete for a Store that is not Recoverable.
func Purge(ctx context.Context, st Store, name string) error {
	if r, ok := st.(Recoverable); ok {
		return r.Purge(ctx, name)
	}
	return st.Delete(ctx, name)
}
