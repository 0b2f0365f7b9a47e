package enclave

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyraft/keyraft/internal/kes"
)

// OpKind names an operation that must run on the leader.
type OpKind string

// Leader operations.
const (
	OpCreateKey OpKind = "create-key"
	OpImportKey OpKind = "import-key"
	OpDeleteKey OpKind = "delete-key"
	OpLoadKey   OpKind = "load-key"
	// OpProtectKey and OpUnprotectKey set and remove a key's deletion
	// protection (admins only: see SetKeyProtection).
	OpProtectKey   OpKind = "protect-key"
	OpUnprotectKey OpKind = "unprotect-key"
	// OpRestoreKey and OpPurgeKey restore a key pending deletion or purge
	// it before its recovery window ends.
	OpRestoreKey OpKind = "restore-key"
	OpPurgeKey   OpKind = "purge-key"
	// OpRotateSeal begins (or resumes) a seal-key rotation.
	OpRotateSeal OpKind = "rotate-seal"
	// OpRotateKey adds a key version; OpSetMinVersion sets a key's
	// minimum decryption version (Op.Version).
	OpRotateKey     OpKind = "rotate-key"
	OpSetMinVersion OpKind = "set-min-version"
	// OpDestroyVersion deletes a retired version's material (Op.Version).
	OpDestroyVersion OpKind = "destroy-version"
	// OpMarkRecovered asks the leader to mark every key record at or below
	// Through as unconfirmed (fsm.MarkRestore), so that they are
	// reconciled with the keystore: sent by a node that recovered from a
	// lost quorum (fsm.FSM.HoldBack).
	OpMarkRecovered OpKind = "mark-recovered"

	OpCreateEnclave  OpKind = "create-enclave"
	OpDeleteEnclave  OpKind = "delete-enclave"
	OpWritePolicy    OpKind = "write-policy"
	OpDeletePolicy   OpKind = "delete-policy"
	OpAssignPolicy   OpKind = "assign-policy"
	OpDeleteIdentity OpKind = "delete-identity"
)

// Op is a write (or a cache load) that runs on the leader. Followers send
// it through a Forwarder with the caller's identity; the leader validates
// it as the API validates a request and authorizes it again before running
// it (see Execute).
type Op struct {
	Kind     OpKind `json:"kind"`
	Enclave  string `json:"enclave"`
	Name     string `json:"name"`
	Identity string `json:"identity,omitempty"`
	Key      []byte `json:"key,omitempty"`
	Cipher   string `json:"cipher,omitempty"`
	// Admin is a new enclave's admin identity (OpCreateEnclave).
	Admin string `json:"admin,omitempty"`
	// Allow and Deny are a written policy's rules (OpWritePolicy).
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
	// Assignee is the identity a policy is assigned to or removed from.
	Assignee string `json:"assignee,omitempty"`
	// Through is the hold-back index of OpMarkRecovered.
	Through uint64 `json:"through,omitempty"`
	// Version is OpSetMinVersion's minimum decryption version.
	Version int `json:"version,omitempty"`
}

// Result is the outcome of an Op: the Raft index to wait for before
// answering, and the client-visible error, if any.
type Result struct {
	Index uint64     `json:"index"`
	Err   *kes.Error `json:"error,omitempty"`
}

// path is the API path the op corresponds to, for re-authorization ("" for
// internal ops that need none). Execute authorizes enclave create and
// delete in the default enclave, everything else in op.Enclave.
func (op Op) path() string {
	switch op.Kind {
	case OpCreateEnclave:
		return "/v1/enclave/create/" + op.Enclave
	case OpDeleteEnclave:
		return "/v1/enclave/delete/" + op.Enclave
	case OpWritePolicy:
		return "/v1/policy/write/" + op.Name
	case OpDeletePolicy:
		return "/v1/policy/delete/" + op.Name
	case OpAssignPolicy:
		return "/v1/policy/assign/" + op.Name
	case OpDeleteIdentity:
		return "/v1/identity/delete/" + op.Assignee
	case OpCreateKey:
		return "/v1/key/create/" + op.Name
	case OpImportKey:
		return "/v1/key/import/" + op.Name
	case OpDeleteKey:
		return "/v1/key/delete/" + op.Name
	case OpProtectKey, OpUnprotectKey:
		return "/v1/key/protect/" + op.Name
	case OpRestoreKey:
		return "/v1/key/restore/" + op.Name
	case OpPurgeKey:
		return "/v1/key/purge/" + op.Name
	case OpRotateSeal:
		return "/v1/cluster/seal/rotate"
	case OpRotateKey:
		return "/v1/key/rotate/" + op.Name
	case OpSetMinVersion:
		return "/v1/key/min-version/" + op.Name
	case OpDestroyVersion:
		return "/v1/key/version/" + op.Name
	}
	return ""
}

// leaderWait bounds how long a write waits for a leader before it fails
// with 503.
const leaderWait = 5 * time.Second

// write runs op on the leader: locally if this node leads, else through the
// Forwarder; then waits until this node applied the result, so the caller
// reads its own write here.
func (s *Service) write(ctx context.Context, op Op) error {
	if s.cfg.Proposer.IsLeader() {
		_, err := s.execute(ctx, op)
		return err
	}
	if s.cfg.Forwarder == nil {
		return errUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, leaderWait+10*time.Second)
	defer cancel()
	res, err := s.cfg.Forwarder.Forward(ctx, op)
	if err != nil {
		s.log.Warn("forwarding to the leader failed", "op", op.Kind, "error", err)
		return errUnavailable
	}
	if err := s.cfg.FSM.WaitApplied(ctx, res.Index); err != nil {
		return kes.ErrPartialWrite
	}
	if res.Err != nil {
		return *res.Err
	}
	return nil
}

// Execute runs a forwarded op on this node, which must be the leader.
// Before anything touches the keystore or Raft, the op is validated as the
// API validates a request (names, sizes: validate), its identity, which the
// forwarding member vouches for, is authorized again, and the enclave it
// names must exist. No op can address a reserved keystore entry (see
// storeName). Client-visible failures, including every refusal, are
// returned in Result.Err as the API's kes.Error; the error is non-nil only
// for internal failures. Execute clears op.Key. It is safe for concurrent
// use and serializes key creates with enclave deletes as Service says.
func (s *Service) Execute(ctx context.Context, op Op) (Result, error) {
	defer clear(op.Key)
	if err := validate(op); err != nil {
		return toResult(0, err)
	}
	if p := op.path(); p != "" {
		authEnclave := op.Enclave
		if op.Kind == OpCreateEnclave || op.Kind == OpDeleteEnclave {
			authEnclave = DefaultEnclave // enclaves are managed from the default enclave
		}
		if err := s.Authorize(ctx, authEnclave, op.Identity, p); err != nil {
			return toResult(0, err)
		}
	}
	idx, err := s.run(ctx, op)
	return toResult(idx, err)
}

func toResult(idx uint64, err error) (Result, error) {
	if err == nil {
		return Result{Index: idx}, nil
	}
	var ke kes.Error
	if errors.As(err, &ke) {
		return Result{Index: idx, Err: &ke}, nil
	}
	return Result{Index: idx}, err
}

// execute runs an op of this node's own API on this node, the leader. The
// API authorized it; it is validated again all the same.
func (s *Service) execute(ctx context.Context, op Op) (uint64, error) {
	if err := validate(op); err != nil {
		return 0, err
	}
	return s.run(ctx, op)
}

// run runs a validated, authorized op on the leader.
func (s *Service) run(ctx context.Context, op Op) (uint64, error) {
	switch op.Kind {
	case OpCreateEnclave:
		return s.execCreateEnclave(ctx, op)
	case OpDeleteEnclave:
		return s.execDeleteEnclave(ctx, op)
	case OpCreateKey, OpImportKey:
		return s.execCreateKey(ctx, op) // checks the enclave under its lock
	}
	if err := s.enclaveExists(op.Enclave); err != nil {
		return 0, err
	}
	switch op.Kind {
	case OpWritePolicy, OpDeletePolicy, OpAssignPolicy, OpDeleteIdentity:
		return s.execPolicyOp(ctx, op)
	case OpDeleteKey:
		return s.execDeleteKey(ctx, op)
	case OpLoadKey:
		return s.execLoadKey(ctx, op)
	case OpMarkRecovered:
		return s.execMarkRecovered(ctx, op)
	case OpProtectKey, OpUnprotectKey:
		return s.execProtectKey(ctx, op)
	case OpRestoreKey:
		return s.execRestoreKey(ctx, op)
	case OpPurgeKey:
		return s.execPurgeKey(ctx, op)
	case OpRotateSeal:
		return s.execRotateSeal(ctx, op)
	case OpRotateKey:
		return s.execRotateKey(ctx, op)
	case OpSetMinVersion:
		return s.execSetMinVersion(ctx, op)
	case OpDestroyVersion:
		return s.execDestroyVersion(ctx, op)
	}
	return 0, fmt.Errorf("enclave: unknown op %q", op.Kind)
}
