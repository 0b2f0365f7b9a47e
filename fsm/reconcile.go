package fsm

import (
	"context"
)

// metaRestore is the meta entry holding the RestoreMarker of a restore
// whose key records are not yet reconciled with the keystore.
var metaRestore = []byte("restore")

// StateRestored is the kind of the Event that Restore emits after it
// replaced the whole state (a snapshot was installed). Observers drop
// everything they derived from the old state. Its value stands apart from
// the iota-numbered kinds so that kinds added there never collide with it.
const StateRestored EventKind = 64

// RestoreMarker is the replicated "reconcile pending" marker that
// PrepareRestore puts into a snapshot image before the cluster installs
// it. While it is set, the key records that came from the backup are
// unconfirmed: they may name keys the keystore no longer holds, or hold
// material the keystore has since replaced, and no node serves them. The
// leader compares them with the keystore and applies the outcome, together
// with the marker's removal, in one ReconcileKeys command.
type RestoreMarker struct {
	// ID identifies the restore (random, chosen by the leader that
	// prepared the image). A ReconcileKeys for another ID is stale.
	ID string `json:"id"`
	// Applied is the applied index the restored image carries. Every key
	// record of the image has Index == Applied, and every index Raft
	// assigns after the restore is larger, so a record is unconfirmed
	// exactly when its Index is at or below Applied.
	Applied uint64 `json:"applied"`
}

// KeyRef names a key of an enclave.
type KeyRef struct {
	Enclave string `json:"enclave"`
	Name    string `json:"name"`
}

// ReloadKey is a key record re-read from the keystore and sealed again.
type ReloadKey struct {
	Enclave string    `json:"enclave"`
	Key     KeyRecord `json:"key"`
}

// ReconcileKeys ends the reconciliation of a restore's key records with the
// keystore: it removes the records in Evict (gone from the keystore),
// replaces those in Reload (the keystore holds other material or other
// versions; the key's registered versions become the record's), and clears
// the restore marker, all in one apply. Each entry applies only while the
// record is still the restored one (Index at or below the marker's
// Applied): a key deleted or re-created after the restore keeps its newer
// state. The command fails with ErrNotFound, changing nothing, when no
// restore with ID Restore is pending (a stale reconcile of an earlier
// restore, or one that already ran).
type ReconcileKeys struct {
	Restore string      `json:"restore"`
	Evict   []KeyRef    `json:"evict,omitempty"`
	Reload  []ReloadKey `json:"reload,omitempty"`
}

// Type returns TypeReconcileKeys.
func (ReconcileKeys) Type() Type { return TypeReconcileKeys }

func (s *state) planReconcile(c ReconcileKeys, index uint64, ch *change) error {
	m := s.restore
	if m == nil || m.ID != c.Restore {
		return ErrNotFound
	}
	done := map[string]bool{}
	// restored reports (once per key) whether the key's record is still
	// the one the restore installed.
	restored := func(enclave, name string) bool {
		r, ok := s.keys[enclave][name]
		if !ok || r.Index > m.Applied || done[ek(enclave, name)] {
			return false
		}
		done[ek(enclave, name)] = true
		return true
	}
	for _, k := range c.Evict {
		if !restored(k.Enclave, k.Name) {
			continue
		}
		ch.del(bucketKeys, ek(k.Enclave, k.Name))
		ch.do(func() { delete(s.keys[k.Enclave], k.Name) })
		ch.emit(Event{Kind: KeyRemoved, Enclave: k.Enclave, Name: k.Name})
	}
	for _, r := range c.Reload {
		if !restored(r.Enclave, r.Key.Name) {
			continue
		}
		rec := r.Key
		rec.Index = index
		ch.put(bucketKeys, ek(r.Enclave, rec.Name), rec)
		ch.do(func() { nested(s.keys, r.Enclave)[rec.Name] = rec })
		ch.emit(Event{Kind: KeyPut, Enclave: r.Enclave, Name: rec.Name})
		// The reloaded record carries the versions the keystore holds
		// (a backup may predate a rotation): the registry follows it.
		if len(rec.Versions) == 0 {
			s.forgetVersions(r.Enclave, rec.Name, ch)
		} else {
			reg := KeyVersions{Name: rec.Name, Versions: rec.Versions, MinVersion: rec.MinVersion}
			ch.put(bucketVersions, ek(r.Enclave, rec.Name), reg)
			ch.do(func() { nested(s.versions, r.Enclave)[rec.Name] = reg })
		}
	}
	ch.del(bucketMeta, string(metaRestore))
	ch.do(func() { s.restore = nil })
	return nil
}

// RestorePending returns the marker of a restore whose key records have not
// been reconciled with the keystore yet, if there is one.
func (f *FSM) RestorePending() (RestoreMarker, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.restore == nil {
		return RestoreMarker{}, false
	}
	return *f.st.restore, true
}

// Unconfirmed reports whether rec is a key record that came from a restored
// snapshot and has not been reconciled with the keystore yet. Such a record
// must not be served.
func (f *FSM) Unconfirmed(rec KeyRecord) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.unconfirmed(rec) || rec.Index <= f.holdback.Load()
}

// ServableKey returns a key's record, whether it exists, and whether it is
// unconfirmed (see Unconfirmed), in one read of the state: the lookup every
// key request makes.
func (f *FSM) ServableKey(enclave, name string) (rec KeyRecord, ok, unconfirmed bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rec, ok = f.st.keys[enclave][name]
	return rec, ok, ok && (f.st.unconfirmed(rec) || rec.Index <= f.holdback.Load())
}

func (s *state) unconfirmed(rec KeyRecord) bool {
	return s.restore != nil && rec.Index <= s.restore.Applied
}

// WaitRestoreReconciled blocks until no restore is pending or ctx is done,
// in which case it returns ctx.Err(). It is safe for concurrent use.
func (f *FSM) WaitRestoreReconciled(ctx context.Context) error {
	for {
		f.appliedMu.Lock()
		ch := f.appliedCh
		f.appliedMu.Unlock()
		if _, ok := f.RestorePending(); !ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
