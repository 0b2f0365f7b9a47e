package fsm

import (
	"errors"
	"time"
)

// Key versions (issue 12). A rotated key's versions 2..n and its minimum
// decryption version are durable metadata: they live in the "versions"
// bucket, which, unlike the key records (a cache of the keystore that may
// be evicted and loaded again), is dropped only when the key is deleted.
// Every key record carries a copy of them, so requests need one lookup,
// and its sealed material holds the keystore values of all versions.

var bucketVersions = []byte("versions")

// ErrVersionsChanged is returned by PutKey for a record whose versions
// differ from the key's registered versions (it was read before a
// rotation), and by AddKeyVersion for a version that is not the next one.
var ErrVersionsChanged = errors.New("fsm: the key's versions changed")

// VersionInfo describes one key version ≥ 2.
type VersionInfo struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Destroyed is set once the version's material was deleted (it had
	// been retired first: below MinVersion).
	Destroyed bool `json:"destroyed,omitempty"`
}

// KeyVersions is a rotated key's registered versions.
type KeyVersions struct {
	Name string `json:"name"`
	// Versions are versions 2..n, ascending.
	Versions []VersionInfo `json:"versions"`
	// MinVersion is the lowest version that may decrypt (0 or 1: all).
	MinVersion int `json:"min_version,omitempty"`
}

// AddKeyVersion adds the next version of a key: it registers Version and
// replaces the key's record (whose sealed material holds every version)
// in one apply. The record must be the one written at IfIndex (else
// ErrNotFound) and Version.Version the next number (else
// ErrVersionsChanged).
type AddKeyVersion struct {
	Enclave string      `json:"enclave"`
	Version VersionInfo `json:"version"`
	Key     KeyRecord   `json:"key"`
	IfIndex uint64      `json:"if_index"`
}

// SetMinVersion sets a rotated key's minimum decryption version. It fails
// with ErrNotFound for a key without versions ≥ 2, a version it does not
// have, or a minimum that would admit a destroyed version.
type SetMinVersion struct {
	Enclave    string `json:"enclave"`
	Name       string `json:"name"`
	MinVersion int    `json:"min_version"`
}

// DestroyKeyVersion marks a retired version ≥ 2 destroyed and replaces
// the key's record (whose sealed material no longer holds it) in one
// apply. The record must be the one written at IfIndex (else ErrNotFound);
// the version must exist, be below the minimum decryption version and not
// be destroyed yet (else ErrVersionsChanged).
type DestroyKeyVersion struct {
	Enclave string    `json:"enclave"`
	Version int       `json:"version"`
	Key     KeyRecord `json:"key"`
	IfIndex uint64    `json:"if_index"`
}

// Type returns TypeDestroyKeyVersion.
func (DestroyKeyVersion) Type() Type { return TypeDestroyKeyVersion }

func (s *state) planDestroyKeyVersion(c DestroyKeyVersion, index uint64, ch *change) error {
	old, ok := s.keys[c.Enclave][c.Key.Name]
	if !ok || old.Index != c.IfIndex {
		return ErrNotFound
	}
	reg := s.versions[c.Enclave][c.Key.Name]
	i := c.Version - 2
	if i < 0 || i >= len(reg.Versions) || c.Version >= reg.MinVersion || reg.Versions[i].Destroyed {
		return ErrVersionsChanged
	}
	next := KeyVersions{Name: reg.Name, Versions: append([]VersionInfo(nil), reg.Versions...), MinVersion: reg.MinVersion}
	next.Versions[i].Destroyed = true
	s.putVersions(c.Enclave, c.Key, next, index, ch)
	return nil
}

// Type returns TypeAddKeyVersion.
func (AddKeyVersion) Type() Type { return TypeAddKeyVersion }

// Type returns TypeSetMinVersion.
func (SetMinVersion) Type() Type { return TypeSetMinVersion }

// versionsMatch reports whether a record carries the key's registered
// versions (none for a key never rotated).
func (s *state) versionsMatch(enclave string, r KeyRecord) bool {
	return r.Carries(s.versions[enclave][r.Name])
}

// Carries reports whether r carries the versions v: the same versions ≥ 2,
// destroyed alike, and the same minimum decryption version.
func (r KeyRecord) Carries(v KeyVersions) bool {
	if len(r.Versions) != len(v.Versions) || r.MinVersion != v.MinVersion {
		return false
	}
	for i := range r.Versions {
		if r.Versions[i].Destroyed != v.Versions[i].Destroyed {
			return false
		}
	}
	return true
}

func (s *state) planAddKeyVersion(c AddKeyVersion, index uint64, ch *change) error {
	old, ok := s.keys[c.Enclave][c.Key.Name]
	if !ok || old.Index != c.IfIndex {
		return ErrNotFound
	}
	reg := s.versions[c.Enclave][c.Key.Name]
	if c.Version.Version != len(reg.Versions)+2 {
		return ErrVersionsChanged
	}
	if !s.sealUsable(c.Key) {
		return ErrSealInUse
	}
	next := KeyVersions{Name: c.Key.Name, Versions: append(append([]VersionInfo(nil), reg.Versions...), c.Version), MinVersion: reg.MinVersion}
	s.putVersions(c.Enclave, c.Key, next, index, ch)
	return nil
}

// putVersions writes a key's registered versions and its record, which
// carries a copy of them, in one change.
func (s *state) putVersions(enclave string, r KeyRecord, next KeyVersions, index uint64, ch *change) {
	r.Versions, r.MinVersion, r.Index = next.Versions, next.MinVersion, index
	ch.put(bucketVersions, ek(enclave, r.Name), next)
	ch.put(bucketKeys, ek(enclave, r.Name), r)
	ch.do(func() {
		nested(s.versions, enclave)[r.Name] = next
		nested(s.keys, enclave)[r.Name] = r
	})
	ch.emit(Event{Kind: KeyPut, Enclave: enclave, Name: r.Name})
}

func (s *state) planSetMinVersion(c SetMinVersion, index uint64, ch *change) error {
	reg, ok := s.versions[c.Enclave][c.Name]
	if !ok || c.MinVersion < 1 || c.MinVersion > len(reg.Versions)+1 {
		return ErrNotFound
	}
	for _, v := range reg.Versions {
		if v.Destroyed && v.Version >= c.MinVersion {
			return ErrNotFound // a destroyed version cannot decrypt again
		}
	}
	reg.MinVersion = c.MinVersion
	ch.put(bucketVersions, ek(c.Enclave, c.Name), reg)
	ch.do(func() { nested(s.versions, c.Enclave)[c.Name] = reg })
	if r, ok := s.keys[c.Enclave][c.Name]; ok {
		r.MinVersion, r.Index = reg.MinVersion, index
		ch.put(bucketKeys, ek(c.Enclave, c.Name), r)
		ch.do(func() { nested(s.keys, c.Enclave)[c.Name] = r })
		ch.emit(Event{Kind: KeyPut, Enclave: c.Enclave, Name: c.Name})
	}
	return nil
}

// forgetVersions drops a deleted key's registered versions.
func (s *state) forgetVersions(enclave, name string, ch *change) {
	if _, ok := s.versions[enclave][name]; ok {
		ch.del(bucketVersions, ek(enclave, name))
		ch.do(func() { delete(s.versions[enclave], name) })
	}
}

// KeyVersions returns a key's registered versions ≥ 2 and its minimum
// decryption version; ok is false for a key never rotated.
func (f *FSM) KeyVersions(enclave, name string) (KeyVersions, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.st.versions[enclave][name]
	return v, ok
}
