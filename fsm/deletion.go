package fsm

import (
	"errors"
	"sort"
	"time"
)

// bucketDeleted holds the keys deleted within the recovery window
// (protection.recovery_window), by "enclave\x00name": the key is gone for
// every client, its name stays reserved, and its keystore entry waits for
// the purge at PurgeAt (or a restore).
var bucketDeleted = []byte("deleted")

// ErrDeleted is returned by PutKey for a name whose key is pending deletion:
// neither a create nor a load may bring the key back; only a restore
// (EndDeletion) can.
var ErrDeleted = errors.New("fsm: key is pending deletion")

// Deletion is a key pending deletion.
type Deletion struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	DeletedBy string    `json:"deleted_by,omitempty"`
	// PurgeAt is when the leader destroys the keystore entry.
	PurgeAt time.Time `json:"purge_at"`
}

// ScheduleDeletion deletes a key within the recovery window: it removes
// the key's record and records the pending deletion, in one apply. It
// fails with ErrNotFound when the enclave does not exist and with
// ErrExists when the key is already pending deletion.
type ScheduleDeletion struct {
	Enclave string   `json:"enclave"`
	Key     Deletion `json:"key"`
}

// EndDeletion ends a pending deletion: the key was restored (it loads from
// the keystore again) or purged. It fails with ErrNotFound unless the key
// is pending deletion since DeletedAt, so a stale restore or purge cannot
// end a later deletion of the same name.
type EndDeletion struct {
	Enclave   string    `json:"enclave"`
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	// Purged is set when the key was destroyed (not restored): its
	// registered versions go too.
	Purged bool `json:"purged,omitempty"`
}

// Type returns TypeScheduleDeletion.
func (ScheduleDeletion) Type() Type { return TypeScheduleDeletion }

// Type returns TypeEndDeletion.
func (EndDeletion) Type() Type { return TypeEndDeletion }

func (s *state) planScheduleDeletion(c ScheduleDeletion, ch *change) error {
	if !s.hasEnclave(c.Enclave) {
		return ErrNotFound
	}
	d := c.Key
	if _, ok := s.deleted[c.Enclave][d.Name]; ok {
		return ErrExists
	}
	if _, ok := s.keys[c.Enclave][d.Name]; ok {
		ch.del(bucketKeys, ek(c.Enclave, d.Name))
		ch.do(func() { delete(s.keys[c.Enclave], d.Name) })
		ch.emit(Event{Kind: KeyRemoved, Enclave: c.Enclave, Name: d.Name})
	}
	ch.put(bucketDeleted, ek(c.Enclave, d.Name), d)
	ch.do(func() { nested(s.deleted, c.Enclave)[d.Name] = d })
	return nil
}

func (s *state) planEndDeletion(c EndDeletion, ch *change) error {
	d, ok := s.deleted[c.Enclave][c.Name]
	if !ok || !d.DeletedAt.Equal(c.DeletedAt) {
		return ErrNotFound
	}
	ch.del(bucketDeleted, ek(c.Enclave, c.Name))
	ch.do(func() { delete(s.deleted[c.Enclave], c.Name) })
	if c.Purged {
		s.forgetVersions(c.Enclave, c.Name, ch)
	}
	return nil
}

// Deleted returns a key's pending deletion, if it has one.
func (f *FSM) Deleted(enclave, name string) (Deletion, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.st.deleted[enclave][name]
	return d, ok
}

// Deletions returns an enclave's pending deletions, sorted by name.
func (f *FSM) Deletions(enclave string) []Deletion {
	f.mu.RLock()
	out := make([]Deletion, 0, len(f.st.deleted[enclave]))
	for _, d := range f.st.deleted[enclave] {
		out = append(out, d)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DueDeletion is a pending deletion whose purge time has come.
type DueDeletion struct {
	Enclave string
	Key     Deletion
}

// DueDeletions returns the pending deletions, of every enclave, whose
// PurgeAt is not after now, oldest first, and the earliest PurgeAt of
// those not yet due (zero if none).
func (f *FSM) DueDeletions(now time.Time) ([]DueDeletion, time.Time) {
	f.mu.RLock()
	var due []DueDeletion
	var next time.Time
	for enclave, keys := range f.st.deleted {
		for _, d := range keys {
			switch {
			case !d.PurgeAt.After(now):
				due = append(due, DueDeletion{Enclave: enclave, Key: d})
			case next.IsZero() || d.PurgeAt.Before(next):
				next = d.PurgeAt
			}
		}
	}
	f.mu.RUnlock()
	sort.Slice(due, func(i, j int) bool { return due[i].Key.PurgeAt.Before(due[j].Key.PurgeAt) })
	return due, next
}
