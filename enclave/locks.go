package enclave

import "sync"

// enclaveLocks holds one readers-writer lock per enclave name, used on the
// leader to serialize the operations that add entries to an enclave's
// keystore namespace with those that empty it:
//
//   - a key create or import holds its enclave's lock shared from the
//     enclave-exists check through the keystore write and the Raft apply,
//     and so does a key load (keystore read, apply);
//   - an enclave delete holds it exclusively from listing the enclave's
//     keystore entries through the apply that deletes the enclave;
//   - an enclave create holds it exclusively from the exists check through
//     purging leftover entries and the apply that creates it.
//
// So a delete never lists the namespace while a create is between its
// check and its apply, and a create that waited for a delete sees the
// enclave gone. The locks are process-local: they order operations on one
// leader only (a new leader's leftovers are handled by the purge on create
// and by PutKey failing for a missing enclave). Writers are preferred, as
// with sync.RWMutex: once a delete waits, new creates wait behind it.
//
// The zero value is ready to use; entries exist only while held or
// awaited, so the map does not grow with the number of enclaves ever seen.
type enclaveLocks struct {
	mu sync.Mutex
	m  map[string]*enclaveLock
}

type enclaveLock struct {
	rw   sync.RWMutex
	refs int // guarded by enclaveLocks.mu
}

// shared blocks until it holds the enclave's lock shared and returns the
// function that releases it.
func (l *enclaveLocks) shared(enclave string) (unlock func()) {
	e := l.ref(enclave)
	e.rw.RLock()
	return func() {
		e.rw.RUnlock()
		l.unref(enclave, e)
	}
}

// exclusive blocks until it holds the enclave's lock exclusively and
// returns the function that releases it.
func (l *enclaveLocks) exclusive(enclave string) (unlock func()) {
	e := l.ref(enclave)
	e.rw.Lock()
	return func() {
		e.rw.Unlock()
		l.unref(enclave, e)
	}
}

func (l *enclaveLocks) ref(enclave string) *enclaveLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*enclaveLock{}
	}
	e := l.m[enclave]
	if e == nil {
		e = &enclaveLock{}
		l.m[enclave] = e
	}
	e.refs++
	return e
}

func (l *enclaveLocks) unref(enclave string, e *enclaveLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, enclave)
	}
}
