// Package metered wraps a store.Store and counts its calls by kind, so an
// operator can see how often the cluster goes to the keystore (and that
// serving cached keys does not).
package metered

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/keyraft/keyraft/store"
)

// Kinds of keystore calls, the label values of keyraft_keystore_calls_total.
const (
	Create = "create"
	Get    = "get"
	Delete = "delete"
	List   = "list"
	Status = "status"
)

// Kinds lists every kind a Store counts.
var Kinds = []string{Create, Get, Delete, List, Status}

// Store counts the calls made to the store it wraps, failed ones too. It
// implements store.Versioned (with empty versions when the wrapped store
// does not) and store.Recoverable (with the package fallbacks). All methods are safe for concurrent use.
type Store struct {
	inner  store.Store
	counts [5]atomic.Uint64
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Versioned   = (*Store)(nil)
	_ store.Recoverable = (*Store)(nil)
)

// New returns a Store counting the calls to inner.
func New(inner store.Store) *Store { return &Store{inner: inner} }

// Calls returns how many calls of kind (one of Kinds) were made; 0 for an
// unknown kind.
func (s *Store) Calls(kind string) uint64 {
	for i, k := range Kinds {
		if k == kind {
			return s.counts[i].Load()
		}
	}
	return 0
}

func (s *Store) count(i int) { s.counts[i].Add(1) }

// Create counts a create and calls the wrapped store's Create.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	s.count(0)
	return s.inner.Create(ctx, name, value)
}

// CreateVersion counts a create and calls store.CreateVersion.
func (s *Store) CreateVersion(ctx context.Context, name string, value []byte) (string, error) {
	s.count(0)
	return store.CreateVersion(ctx, s.inner, name, value)
}

// Get counts a get and calls the wrapped store's Get.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	s.count(1)
	return s.inner.Get(ctx, name)
}

// GetVersion counts a get and calls store.GetVersion.
func (s *Store) GetVersion(ctx context.Context, name string) ([]byte, string, error) {
	s.count(1)
	return store.GetVersion(ctx, s.inner, name)
}

// Delete counts a delete and calls the wrapped store's Delete.
func (s *Store) Delete(ctx context.Context, name string) error {
	s.count(2)
	return s.inner.Delete(ctx, name)
}

// ScheduleDelete counts a delete and calls store.ScheduleDelete.
func (s *Store) ScheduleDelete(ctx context.Context, name string, window time.Duration) error {
	s.count(2)
	return store.ScheduleDelete(ctx, s.inner, name, window)
}

// RestoreDeleted counts a delete and calls store.RestoreDeleted.
func (s *Store) RestoreDeleted(ctx context.Context, name string) error {
	s.count(2)
	return store.RestoreDeleted(ctx, s.inner, name)
}

// Purge counts a delete and calls store.Purge.
func (s *Store) Purge(ctx context.Context, name string) error {
	s.count(2)
	return store.Purge(ctx, s.inner, name)
}

// List counts a listing and calls the wrapped store's List.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	s.count(3)
	return s.inner.List(ctx, prefix)
}

// ListVersions counts a listing and calls store.ListVersions.
func (s *Store) ListVersions(ctx context.Context, prefix string) ([]store.Entry, error) {
	s.count(3)
	return store.ListVersions(ctx, s.inner, prefix)
}

// Status counts a health check and calls the wrapped store's Status.
func (s *Store) Status(ctx context.Context) (store.State, error) {
	s.count(4)
	return s.inner.Status(ctx)
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.inner.Close() }
