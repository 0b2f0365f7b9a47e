package enclave

import (
	"time"

	"github.com/keyraft/keyraft/fsm"
)

// DefaultEnclave is the enclave used when a request names none. Its keys are
// stored in the keystore under their plain names, exactly as KES stores them.
// It always exists and cannot be created or deleted.
const DefaultEnclave = fsm.DefaultEnclave

// KeyInfo describes a key (GET /v1/key/describe).
type KeyInfo struct {
	Name      string
	Algorithm string // "AES256" or "ChaCha20"
	CreatedAt time.Time
	CreatedBy string
	// Protected is set while the key is protected from deletion.
	Protected bool
	// Versions lists the key's versions, version 1 first (one entry for a
	// key never rotated); MinVersion is the lowest that may decrypt.
	Versions   []VersionDetail
	MinVersion int
	// RotateEvery and NextRotation describe the key's rotation schedule
	// (zero when no rotation rule matches it).
	RotateEvery  time.Duration
	NextRotation time.Time
}

// Policy is a named set of allow and deny path patterns.
type Policy struct {
	Allow     []string
	Deny      []string
	CreatedAt time.Time
	CreatedBy string
}

// PolicyInfo describes a policy without its rules (GET /v1/policy/describe).
type PolicyInfo struct {
	Name      string
	CreatedAt time.Time
	CreatedBy string
}

// IdentityInfo describes an identity (GET /v1/identity/describe).
type IdentityInfo struct {
	Identity  string
	IsAdmin   bool
	Policy    string // empty for the admin
	CreatedAt time.Time
	CreatedBy string
}

// SelfInfo is what /v1/identity/self/describe returns for the caller.
type SelfInfo struct {
	IdentityInfo
	PolicyRules *Policy // nil for the admin
}

// EnclaveInfo describes an enclave.
type EnclaveInfo struct {
	Name      string
	Admin     string
	CreatedAt time.Time
	CreatedBy string
}
