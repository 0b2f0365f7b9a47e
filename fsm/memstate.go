package fsm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// state is the in-memory copy of everything in the bbolt file.
type state struct {
	applied    uint64
	seal       *SealRecord
	sealNext   *SealRecord // the seal key a rotation in progress moves to
	enclaves   map[string]EnclaveRecord
	keys       map[string]map[string]KeyRecord
	policies   map[string]map[string]PolicyRecord
	identities map[string]map[string]IdentityRecord
	members    map[string]Member
	removed    map[string]uint64
	// restore is set while the key records of a restored snapshot are not
	// yet reconciled with the keystore (see RestoreMarker).
	restore *RestoreMarker
	// revoked maps the certificate identities of removed members to the
	// index that removed them, until a PutMember re-authorizes them.
	revoked map[string]uint64
	// protected holds the keys protected from deletion, per enclave.
	protected map[string]map[string]Protection
	// deleted holds the keys pending deletion, per enclave.
	deleted map[string]map[string]Deletion
	// versions holds the rotated keys' versions, per enclave.
	versions map[string]map[string]KeyVersions
}

func newState() *state {
	return &state{
		enclaves:   map[string]EnclaveRecord{},
		keys:       map[string]map[string]KeyRecord{},
		policies:   map[string]map[string]PolicyRecord{},
		identities: map[string]map[string]IdentityRecord{},
		protected:  map[string]map[string]Protection{},
		deleted:    map[string]map[string]Deletion{},
		versions:   map[string]map[string]KeyVersions{},
		members:    map[string]Member{},
		removed:    map[string]uint64{},
		revoked:    map[string]uint64{},
	}
}

// load creates missing buckets and reads the file into memory.
func (s *state) load(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(metaFormat); v == nil {
		if err := meta.Put(metaFormat, u64(formatVersion)); err != nil {
			return err
		}
	} else if got := binary.BigEndian.Uint64(v); got != formatVersion {
		return fmt.Errorf("fsm: state format %d, this build reads %d", got, formatVersion)
	}
	if v := meta.Get(metaApplied); v != nil {
		s.applied = binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(metaRestore); v != nil {
		s.restore = new(RestoreMarker)
		if err := json.Unmarshal(v, s.restore); err != nil {
			return fmt.Errorf("restore marker: %w", err)
		}
	}
	if v := meta.Get(metaSealNext); v != nil {
		s.sealNext = new(SealRecord)
		if err := json.Unmarshal(v, s.sealNext); err != nil {
			return fmt.Errorf("next seal record: %w", err)
		}
	}
	if v := meta.Get(metaSeal); v != nil {
		s.seal = new(SealRecord)
		if err := json.Unmarshal(v, s.seal); err != nil {
			return fmt.Errorf("seal record: %w", err)
		}
	}
	if err := each(tx, bucketEnclaves, func(_ string, r EnclaveRecord) { s.enclaves[r.Name] = r }); err != nil {
		return err
	}
	if err := each(tx, bucketKeys, func(k string, r KeyRecord) { nested(s.keys, enclaveOf(k))[r.Name] = r }); err != nil {
		return err
	}
	if err := each(tx, bucketProtected, func(k string, p Protection) { nested(s.protected, enclaveOf(k))[p.Name] = p }); err != nil {
		return err
	}
	if err := each(tx, bucketDeleted, func(k string, d Deletion) { nested(s.deleted, enclaveOf(k))[d.Name] = d }); err != nil {
		return err
	}
	if err := each(tx, bucketVersions, func(k string, v KeyVersions) { nested(s.versions, enclaveOf(k))[v.Name] = v }); err != nil {
		return err
	}
	if err := each(tx, bucketPolicies, func(k string, r PolicyRecord) { nested(s.policies, enclaveOf(k))[r.Name] = r }); err != nil {
		return err
	}
	if err := each(tx, bucketIdentities, func(k string, r IdentityRecord) { nested(s.identities, enclaveOf(k))[r.Identity] = r }); err != nil {
		return err
	}
	if err := each(tx, bucketMembers, func(_ string, m Member) { s.members[m.ID] = m }); err != nil {
		return err
	}
	if err := tx.Bucket(bucketRemoved).ForEach(func(k, v []byte) error {
		s.removed[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	}); err != nil {
		return err
	}
	return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
		s.revoked[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	})
}

func each[T any](tx *bolt.Tx, bucket []byte, fn func(key string, v T)) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%s/%q: %w", bucket, k, err)
		}
		fn(string(k), r)
		return nil
	})
}

func nested[T any](m map[string]map[string]T, enclave string) map[string]T {
	inner, ok := m[enclave]
	if !ok {
		inner = map[string]T{}
		m[enclave] = inner
	}
	return inner
}

func enclaveOf(key string) string {
	e, _, _ := strings.Cut(key, "\x00")
	return e
}

// DefaultEnclave is the enclave that always exists without a record.
const DefaultEnclave = "default"

// hasEnclave reports whether the enclave exists: the default one always
// does, others while their record exists.
func (s *state) hasEnclave(name string) bool {
	if name == DefaultEnclave {
		return true
	}
	_, ok := s.enclaves[name]
	return ok
}

// plan validates cmd against the current state and records its effects in
// ch without changing anything. It returns the command's result.
func (s *state) plan(cmd Command, index uint64, ch *change) error {
	switch c := cmd.(type) {
	case PutKey:
		if !s.hasEnclave(c.Enclave) {
			return ErrNotFound
		}
		if _, ok := s.deleted[c.Enclave][c.Key.Name]; ok {
			return ErrDeleted
		}
		if !s.sealUsable(c.Key) {
			return ErrSealInUse
		}
		if c.Fresh {
			// A created key has version 1 only. Registered versions
			// belong to a key of the same name deleted behind the
			// cluster's back (its keystore entry was gone, or the
			// keystore's create would have failed): forget them.
			s.forgetVersions(c.Enclave, c.Key.Name, ch)
		} else if !s.versionsMatch(c.Enclave, c.Key) {
			return ErrVersionsChanged
		}
		old, ok := s.keys[c.Enclave][c.Key.Name]
		if ok && c.Create {
			return ErrExists
		}
		if c.IfIndex != 0 && (!ok || old.Index != c.IfIndex) {
			return ErrNotFound
		}
		r := c.Key
		r.Index = index
		ch.put(bucketKeys, ek(c.Enclave, r.Name), r)
		ch.do(func() { nested(s.keys, c.Enclave)[r.Name] = r })
		ch.emit(Event{Kind: KeyPut, Enclave: c.Enclave, Name: r.Name})
		if c.Protect != nil {
			p := *c.Protect
			p.Name = r.Name
			ch.put(bucketProtected, ek(c.Enclave, r.Name), p)
			ch.do(func() { nested(s.protected, c.Enclave)[r.Name] = p })
		}
	case RemoveKeys:
		found := false
		for _, name := range c.Names {
			if _, ok := s.keys[c.Enclave][name]; !ok {
				continue
			}
			found = true
			if c.Forget {
				s.forgetVersions(c.Enclave, name, ch)
			}
			ch.del(bucketKeys, ek(c.Enclave, name))
			ch.do(func() { delete(s.keys[c.Enclave], name) })
			ch.emit(Event{Kind: KeyRemoved, Enclave: c.Enclave, Name: name})
		}
		if !found {
			return ErrNotFound
		}
	case Barrier:
	case PutEnclave:
		if _, ok := s.enclaves[c.Enclave.Name]; ok {
			return ErrExists
		}
		ch.put(bucketEnclaves, c.Enclave.Name, c.Enclave)
		ch.do(func() { s.enclaves[c.Enclave.Name] = c.Enclave })
	case DeleteEnclave:
		if _, ok := s.enclaves[c.Name]; !ok {
			return ErrNotFound
		}
		ch.del(bucketEnclaves, c.Name)
		for name := range s.keys[c.Name] {
			ch.del(bucketKeys, ek(c.Name, name))
		}
		for name := range s.policies[c.Name] {
			ch.del(bucketPolicies, ek(c.Name, name))
		}
		for id := range s.identities[c.Name] {
			ch.del(bucketIdentities, ek(c.Name, id))
		}
		for name := range s.protected[c.Name] {
			ch.del(bucketProtected, ek(c.Name, name))
		}
		for name := range s.deleted[c.Name] {
			ch.del(bucketDeleted, ek(c.Name, name))
		}
		for name := range s.versions[c.Name] {
			ch.del(bucketVersions, ek(c.Name, name))
		}
		ch.do(func() {
			delete(s.enclaves, c.Name)
			delete(s.protected, c.Name)
			delete(s.deleted, c.Name)
			delete(s.versions, c.Name)
			delete(s.keys, c.Name)
			delete(s.policies, c.Name)
			delete(s.identities, c.Name)
		})
		ch.emit(Event{Kind: EnclaveDeleted, Enclave: c.Name})
	case PutPolicy:
		if !s.hasEnclave(c.Enclave) {
			return ErrNotFound
		}
		ch.put(bucketPolicies, ek(c.Enclave, c.Policy.Name), c.Policy)
		ch.do(func() { nested(s.policies, c.Enclave)[c.Policy.Name] = c.Policy })
	case DeletePolicy:
		if _, ok := s.policies[c.Enclave][c.Name]; !ok {
			return ErrNotFound
		}
		ch.del(bucketPolicies, ek(c.Enclave, c.Name))
		ch.do(func() { delete(s.policies[c.Enclave], c.Name) })
		for id, r := range s.identities[c.Enclave] {
			if r.Policy == c.Name {
				ch.del(bucketIdentities, ek(c.Enclave, id))
				ch.do(func() { delete(s.identities[c.Enclave], id) })
			}
		}
	case AssignIdentity:
		if _, ok := s.policies[c.Enclave][c.Identity.Policy]; !ok {
			return ErrNotFound
		}
		ch.put(bucketIdentities, ek(c.Enclave, c.Identity.Identity), c.Identity)
		ch.do(func() { nested(s.identities, c.Enclave)[c.Identity.Identity] = c.Identity })
	case DeleteIdentity:
		if _, ok := s.identities[c.Enclave][c.Identity]; !ok {
			return ErrNotFound
		}
		ch.del(bucketIdentities, ek(c.Enclave, c.Identity))
		ch.do(func() { delete(s.identities[c.Enclave], c.Identity) })
	case ReplacePolicies:
		s.planReplacePolicies(c, ch)
	case ReconcileKeys:
		return s.planReconcile(c, index, ch)
	case MarkRestore:
		return s.planMarkRestore(c, ch)
	case SetProtection:
		return s.planSetProtection(c, ch)
	case ScheduleDeletion:
		return s.planScheduleDeletion(c, ch)
	case EndDeletion:
		return s.planEndDeletion(c, ch)
	case BeginSealRotation:
		return s.planBeginSealRotation(c, ch)
	case ResealKeys:
		return s.planResealKeys(c, index, ch)
	case FinishSealRotation:
		return s.planFinishSealRotation(c, ch)
	case AddKeyVersion:
		return s.planAddKeyVersion(c, index, ch)
	case SetMinVersion:
		return s.planSetMinVersion(c, index, ch)
	case DestroyKeyVersion:
		return s.planDestroyKeyVersion(c, index, ch)
	case SetSeal:
		if s.seal != nil {
			return ErrExists
		}
		ch.put(bucketMeta, string(metaSeal), c.Seal)
		ch.do(func() { seal := c.Seal; s.seal = &seal })
	case PutMember:
		if _, ok := s.removed[c.Member.ID]; ok {
			return ErrRemoved
		}
		ch.put(bucketMembers, c.Member.ID, c.Member)
		// Adding a member is what re-authorizes a revoked identity; the
		// leader decides beforehand whether the caller may do that.
		ch.del(bucketRevoked, c.Member.Identity)
		ch.do(func() { s.members[c.Member.ID] = c.Member; delete(s.revoked, c.Member.Identity) })
		ch.emit(Event{Kind: MembersChanged, Name: c.Member.ID})
	case RemoveMember:
		ch.del(bucketMembers, c.ID)
		ch.puts = append(ch.puts, kv{bucketRemoved, c.ID, u64(index)})
		id := s.members[c.ID].Identity
		revoke := id != "" && !s.identityInUse(id, c.ID)
		if revoke {
			ch.puts = append(ch.puts, kv{bucketRevoked, id, u64(index)})
		}
		ch.do(func() {
			delete(s.members, c.ID)
			s.removed[c.ID] = index
			if revoke {
				s.revoked[id] = index
			}
		})
		ch.emit(Event{Kind: MembersChanged, Name: c.ID})
	default:
		return fmt.Errorf("fsm: no apply for %T: %w", cmd, ErrUnknownCommand)
	}
	return nil
}

func (s *state) planReplacePolicies(c ReplacePolicies, ch *change) {
	for name, p := range s.policies[c.Enclave] {
		if p.FromConfig {
			ch.del(bucketPolicies, ek(c.Enclave, name))
			ch.do(func() { delete(s.policies[c.Enclave], name) })
		}
	}
	for id, r := range s.identities[c.Enclave] {
		if r.FromConfig {
			ch.del(bucketIdentities, ek(c.Enclave, id))
			ch.do(func() { delete(s.identities[c.Enclave], id) })
		}
	}
	for _, p := range c.Policies {
		p.FromConfig = true
		ch.put(bucketPolicies, ek(c.Enclave, p.Name), p)
		ch.do(func() { nested(s.policies, c.Enclave)[p.Name] = p })
	}
	for _, r := range c.Identities {
		r.FromConfig = true
		ch.put(bucketIdentities, ek(c.Enclave, r.Identity), r)
		ch.do(func() { nested(s.identities, c.Enclave)[r.Identity] = r })
	}
}

// identityInUse reports whether a member other than id presents identity.
func (s *state) identityInUse(identity, id string) bool {
	for mid, m := range s.members {
		if mid != id && m.Identity == identity {
			return true
		}
	}
	return false
}
