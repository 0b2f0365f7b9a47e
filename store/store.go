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
