package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Type identifies a command. Types are append-only: a number, once used, is
// never reused or renumbered, because old Raft logs and snapshots carry it.
type Type uint8

// Command types.
const (
	TypePutKey             Type = 1  // PutKey
	TypeRemoveKeys         Type = 2  // RemoveKeys
	TypePutEnclave         Type = 3  // PutEnclave
	TypeDeleteEnclave      Type = 4  // DeleteEnclave
	TypePutPolicy          Type = 5  // PutPolicy
	TypeDeletePolicy       Type = 6  // DeletePolicy
	TypeAssignIdentity     Type = 7  // AssignIdentity
	TypeDeleteIdentity     Type = 8  // DeleteIdentity
	TypeSetSeal            Type = 9  // SetSeal
	TypePutMember          Type = 10 // PutMember
	TypeRemoveMember       Type = 11 // RemoveMember
	TypeReplacePolicies    Type = 12 // ReplacePolicies
	TypeBarrier            Type = 13 // Barrier (was TouchKeys)
	TypeReconcileKeys      Type = 15 // ReconcileKeys
	TypeMarkRestore        Type = 16 // MarkRestore
	TypeSetProtection      Type = 17 // SetProtection
	TypeScheduleDeletion   Type = 18 // ScheduleDeletion
	TypeEndDeletion        Type = 19 // EndDeletion
	TypeBeginSealRotation  Type = 20 // BeginSealRotation
	TypeResealKeys         Type = 21 // ResealKeys
	TypeFinishSealRotation Type = 22 // FinishSealRotation
	TypeAddKeyVersion      Type = 23 // AddKeyVersion
	TypeSetMinVersion      Type = 24 // SetMinVersion
	TypeDestroyKeyVersion  Type = 25 // DestroyKeyVersion
)

// ErrUnknownCommand is returned by Decode for a command type this build does
// not know. The cluster stops the node on it: applying some commands and
// skipping others would make replicas diverge.
var ErrUnknownCommand = errors.New("fsm: unknown command type")

// Command is one replicated state change. Commands are deterministic: the
// leader does everything random, external or clock-dependent before
// proposing, and puts the results into the command.
type Command interface {
	// Type returns the command's wire type.
	Type() Type
}

// KeyRecord is a key's replicated metadata and its sealed material.
type KeyRecord struct {
	Name      string    `json:"name"`
	Algorithm string    `json:"algorithm"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Sealed is the keystore value encrypted with the cluster seal key
	// (see package enclave); never plaintext.
	Sealed []byte `json:"sealed"`
	// LoadedAt is when the leader read the key from the keystore.
	LoadedAt time.Time `json:"loaded_at"`
	// Version is the keystore's version of the value that was sealed
	// (store.Entry.Version; empty when the keystore cannot tell). The
	// leader reloads the key when a listing shows another version.
	Version string `json:"version,omitempty"`
	// Index is the Raft index that wrote the record; set by Apply.
	Index uint64 `json:"index"`
	// Seal is the fingerprint (SealRecord.ID) of the seal key that sealed
	// Sealed; "" means the cluster's first seal key (records written before
	// seal keys could rotate).
	Seal string `json:"seal,omitempty"`
	// Versions and MinVersion copy the key's registered versions ≥ 2 and
	// minimum decryption version (see KeyVersions); Sealed then holds the
	// keystore values of every version. Empty for a key never rotated.
	Versions   []VersionInfo `json:"versions,omitempty"`
	MinVersion int           `json:"min_version,omitempty"`
}

// PutKey stores a key record. It fails with ErrNotFound when the enclave
// does not exist (e.g. it was deleted after the leader checked), so a key
// can never outlive its enclave. With Create set it fails with ErrExists
// when the enclave already holds the name. With IfIndex set it replaces
// only the record written at that index and otherwise fails with
// ErrNotFound, changing nothing: a reload of a changed key cannot bring
// back a key deleted (or replace one re-created) since it was read.
type PutKey struct {
	Enclave string    `json:"enclave"`
	Key     KeyRecord `json:"key"`
	Create  bool      `json:"create,omitempty"`
	IfIndex uint64    `json:"if_index,omitempty"`
	// Protect, if set, also protects the key from deletion (see
	// SetProtection), in the same apply: a create under a
	// protection.deletion pattern.
	Protect *Protection `json:"protect,omitempty"`
	// Fresh marks a key just created in the keystore: it has version 1
	// only, and versions registered for an earlier key of the name are
	// forgotten.
	Fresh bool `json:"fresh,omitempty"`
}

// RemoveKeys removes key records (a delete, or a cache eviction). With
// Forget set (a delete) the keys' registered versions go too; an eviction
// keeps them, so the key loads again with every version.
type RemoveKeys struct {
	Enclave string   `json:"enclave"`
	Names   []string `json:"names"`
	Forget  bool     `json:"forget,omitempty"`
}

// Barrier changes nothing: the leader applies one to know that it has
// applied every entry committed before. Its wire type is the former
// TouchKeys, whose use reports older versions wrote; such entries decode
// as a Barrier and change nothing either (key use is no longer
// replicated: the sealed record does not expire with use).
type Barrier struct{}

// EnclaveRecord is an enclave's replicated metadata.
type EnclaveRecord struct {
	Name      string    `json:"name"`
	Admin     string    `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// PutEnclave creates an enclave; it fails with ErrExists if it exists.
type PutEnclave struct {
	Enclave EnclaveRecord `json:"enclave"`
}

// DeleteEnclave deletes an enclave with its keys, policies and identities.
type DeleteEnclave struct {
	Name string `json:"name"`
}

// PolicyRecord is a replicated policy.
type PolicyRecord struct {
	Name      string    `json:"name"`
	Allow     []string  `json:"allow,omitempty"`
	Deny      []string  `json:"deny,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// FromConfig marks policies that come from the server config file;
	// ReplacePolicies replaces exactly these.
	FromConfig bool `json:"from_config,omitempty"`
}

// PutPolicy creates or replaces a policy. It fails with ErrNotFound when
// the enclave does not exist.
type PutPolicy struct {
	Enclave string       `json:"enclave"`
	Policy  PolicyRecord `json:"policy"`
}

// DeletePolicy deletes a policy; identities assigned to it lose it.
type DeletePolicy struct {
	Enclave string `json:"enclave"`
	Name    string `json:"name"`
}

// IdentityRecord assigns an identity to a policy.
type IdentityRecord struct {
	Identity   string    `json:"identity"`
	Policy     string    `json:"policy"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
	FromConfig bool      `json:"from_config,omitempty"`
}

// AssignIdentity assigns an identity to an existing policy.
type AssignIdentity struct {
	Enclave  string         `json:"enclave"`
	Identity IdentityRecord `json:"identity"`
}

// DeleteIdentity removes an identity's assignment.
type DeleteIdentity struct {
	Enclave  string `json:"enclave"`
	Identity string `json:"identity"`
}

// ReplacePolicies replaces every config-owned policy and identity of an
// enclave with the given ones (a config load or SIGHUP reload).
type ReplacePolicies struct {
	Enclave    string           `json:"enclave"`
	Policies   []PolicyRecord   `json:"policies"`
	Identities []IdentityRecord `json:"identities"`
}

// SealRecord identifies the cluster seal key without revealing it.
type SealRecord struct {
	// ID is a public fingerprint of the seal key.
	ID string `json:"id"`
	// Check is a known plaintext sealed with the key; a node that unseals it
	// holds the right key.
	Check []byte `json:"check"`
	// Entry is the keystore entry that holds the key; "" is the first seal
	// key's entry (enclave.SealName). Rotated keys have entries of their own.
	Entry string `json:"entry,omitempty"`
	// RotatedAt is when the key became the cluster's seal key by a
	// rotation (zero for the first seal key).
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// Previous lists the fingerprints of the seal keys this cluster used
	// before, oldest first: backups sealed with them may be restored (their
	// key records are reloaded from the keystore).
	Previous []string `json:"previous,omitempty"`
}

// SetSeal records the cluster's seal key fingerprint. It fails with
// ErrExists once a seal key is recorded: the seal key never changes.
type SetSeal struct {
	Seal SealRecord `json:"seal"`
}

// Member is a cluster member's addresses.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Identity is the hex SHA-256 of the member's certificate public key;
	// only members' identities may connect to the cluster port.
	Identity string `json:"identity"`
}

// PutMember records a member's addresses. It fails with ErrRemoved if the id
// was removed before: removed ids are never reused.
type PutMember struct {
	Member Member `json:"member"`
}

// RemoveMember removes a member and retires its id for good.
type RemoveMember struct {
	ID string `json:"id"`
}

func (PutKey) Type() Type          { return TypePutKey }
func (RemoveKeys) Type() Type      { return TypeRemoveKeys }
func (Barrier) Type() Type         { return TypeBarrier }
func (PutEnclave) Type() Type      { return TypePutEnclave }
func (DeleteEnclave) Type() Type   { return TypeDeleteEnclave }
func (PutPolicy) Type() Type       { return TypePutPolicy }
func (DeletePolicy) Type() Type    { return TypeDeletePolicy }
func (AssignIdentity) Type() Type  { return TypeAssignIdentity }
func (DeleteIdentity) Type() Type  { return TypeDeleteIdentity }
func (ReplacePolicies) Type() Type { return TypeReplacePolicies }
func (SetSeal) Type() Type         { return TypeSetSeal }
func (PutMember) Type() Type       { return TypePutMember }
func (RemoveMember) Type() Type    { return TypeRemoveMember }

// Encode serializes a command: one type byte followed by its JSON body.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode command %d: %w", c.Type(), err)
	}
	return append([]byte{byte(c.Type())}, body...), nil
}

// Decode parses a command produced by Encode. It returns an error wrapping
// ErrUnknownCommand for a type this build does not know.
func Decode(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("fsm: empty command: %w", ErrUnknownCommand)
	}
	var c Command
	switch Type(b[0]) {
	case TypePutKey:
		c = new(PutKey)
	case TypeRemoveKeys:
		c = new(RemoveKeys)
	case TypeBarrier:
		c = new(Barrier)
	case TypeReconcileKeys:
		c = new(ReconcileKeys)
	case TypeMarkRestore:
		c = new(MarkRestore)
	case TypeSetProtection:
		c = new(SetProtection)
	case TypeScheduleDeletion:
		c = new(ScheduleDeletion)
	case TypeEndDeletion:
		c = new(EndDeletion)
	case TypeBeginSealRotation:
		c = new(BeginSealRotation)
	case TypeResealKeys:
		c = new(ResealKeys)
	case TypeFinishSealRotation:
		c = new(FinishSealRotation)
	case TypeAddKeyVersion:
		c = new(AddKeyVersion)
	case TypeSetMinVersion:
		c = new(SetMinVersion)
	case TypeDestroyKeyVersion:
		c = new(DestroyKeyVersion)
	case TypePutEnclave:
		c = new(PutEnclave)
	case TypeDeleteEnclave:
		c = new(DeleteEnclave)
	case TypePutPolicy:
		c = new(PutPolicy)
	case TypeDeletePolicy:
		c = new(DeletePolicy)
	case TypeAssignIdentity:
		c = new(AssignIdentity)
	case TypeDeleteIdentity:
		c = new(DeleteIdentity)
	case TypeReplacePolicies:
		c = new(ReplacePolicies)
	case TypeSetSeal:
		c = new(SetSeal)
	case TypePutMember:
		c = new(PutMember)
	case TypeRemoveMember:
		c = new(RemoveMember)
	default:
		return nil, fmt.Errorf("fsm: command type %d: %w", b[0], ErrUnknownCommand)
	}
	if err := json.Unmarshal(b[1:], c); err != nil {
		return nil, fmt.Errorf("fsm: decode command type %d: %w", b[0], err)
	}
	return deref(c), nil
}

// deref turns the *T that Decode filled into the T that Encode takes, so a
// decoded command compares equal to the one encoded.
func deref(c Command) Command {
	switch v := c.(type) {
	case *PutKey:
		return *v
	case *RemoveKeys:
		return *v
	case *Barrier:
		return *v
	case *ReconcileKeys:
		return *v
	case *MarkRestore:
		return *v
	case *SetProtection:
		return *v
	case *ScheduleDeletion:
		return *v
	case *EndDeletion:
		return *v
	case *BeginSealRotation:
		return *v
	case *ResealKeys:
		return *v
	case *FinishSealRotation:
		return *v
	case *AddKeyVersion:
		return *v
	case *SetMinVersion:
		return *v
	case *DestroyKeyVersion:
		return *v
	case *PutEnclave:
		return *v
	case *DeleteEnclave:
		return *v
	case *PutPolicy:
		return *v
	case *DeletePolicy:
		return *v
	case *AssignIdentity:
		return *v
	case *DeleteIdentity:
		return *v
	case *ReplacePolicies:
		return *v
	case *SetSeal:
		return *v
	case *PutMember:
		return *v
	case *RemoveMember:
		return *v
	}
	return c
}
