package fsm

import "time"

// bucketProtected holds the deletion protection of keys, by
// "enclave\x00name". It is kept apart from the key records, which are a
// cache that may be evicted and loaded again: the protection stays.
var bucketProtected = []byte("protected")

// Protection is the deletion protection of one key.
type Protection struct {
	Name  string    `json:"name"`
	SetBy string    `json:"set_by,omitempty"` // the identity that set it, or "config"
	SetAt time.Time `json:"set_at"`
}

// SetProtection protects a key from deletion (Protected) or removes the
// protection. It fails with ErrNotFound when the enclave does not exist.
// Removing a protection that is not set changes nothing.
type SetProtection struct {
	Enclave   string     `json:"enclave"`
	Key       Protection `json:"key"`
	Protected bool       `json:"protected"`
}

// Type returns TypeSetProtection.
func (SetProtection) Type() Type { return TypeSetProtection }

func (s *state) planSetProtection(c SetProtection, ch *change) error {
	if !s.hasEnclave(c.Enclave) {
		return ErrNotFound
	}
	k := c.Key
	if !c.Protected {
		if _, ok := s.protected[c.Enclave][k.Name]; ok {
			ch.del(bucketProtected, ek(c.Enclave, k.Name))
			ch.do(func() { delete(s.protected[c.Enclave], k.Name) })
		}
		return nil
	}
	ch.put(bucketProtected, ek(c.Enclave, k.Name), k)
	ch.do(func() { nested(s.protected, c.Enclave)[k.Name] = k })
	return nil
}

// Protected returns a key's deletion protection, if it has one.
func (f *FSM) Protected(enclave, name string) (Protection, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.protected[enclave][name]
	return p, ok
}

// ProtectedCount returns how many keys of an enclave are protected.
func (f *FSM) ProtectedCount(enclave string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.protected[enclave])
}
