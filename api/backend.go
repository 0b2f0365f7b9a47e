package api

import (
	"context"
	"time"

	"github.com/keyraft/keyraft/enclave"
)

// Backend is the domain the HTTP layer serves; *enclave.Service implements it.
//
// Every method is safe for concurrent use. Client-visible failures are
// returned as kes.Error values (exact KES status and message), which the
// handlers send unchanged; any other error is logged in full and answered
// with 500 and a generic message. enclaveName is already validated and never
// empty ("default" when the request named none).
type Backend interface {
	// Authorize returns nil if identity may call the request path in the
	// enclave: the admin may call everything, others need a policy whose
	// rules allow the path. A denial is kes.ErrNotAllowed.
	Authorize(ctx context.Context, enclaveName, identity, path string) error

	CreateKey(ctx context.Context, enclaveName, name, identity string) error
	ImportKey(ctx context.Context, enclaveName, name string, key []byte, cipher, identity string) error
	DescribeKey(ctx context.Context, enclaveName, name string) (enclave.KeyInfo, error)
	// ListKeys returns up to 1024 names starting with prefix and greater
	// than continueAt (if set), sorted, and the next continueAt ("" at the end).
	ListKeys(ctx context.Context, enclaveName, prefix, continueAt string) (names []string, next string, err error)
	DeleteKey(ctx context.Context, enclaveName, name, identity string) error
	// SetKeyProtection protects a key from deletion or removes the
	// protection (Keyraft's /v1/key/protect/; admins only).
	SetKeyProtection(ctx context.Context, enclaveName, name string, protected bool, identity string) error
	// DeletedKeys lists the keys pending deletion (recovery window) whose
	// names match pattern, sorted by name.
	DeletedKeys(enclaveName, pattern string) ([]enclave.PendingDeletion, error)
	// RestoreKey brings back a key pending deletion; PurgeKey destroys it
	// now. Both answer kes.ErrKeyNotFound for a key not pending deletion.
	RestoreKey(ctx context.Context, enclaveName, name, identity string) error
	PurgeKey(ctx context.Context, enclaveName, name, identity string) error
	GenerateKey(ctx context.Context, enclaveName, name string, associatedData []byte) (plaintext, ciphertext []byte, err error)
	Encrypt(ctx context.Context, enclaveName, name string, plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ctx context.Context, enclaveName, name string, ciphertext, associatedData []byte) ([]byte, error)
	// HMAC uses the HMAC key of version 1 (stable across rotations), or
	// of version when it is positive.
	HMAC(ctx context.Context, enclaveName, name string, message []byte, version int) ([]byte, error)
	// RotateKey adds a key version and returns its number; SetMinVersion
	// sets the lowest version that may decrypt; Rewrap re-encrypts a
	// ciphertext under the newest version (Keyraft's key versions).
	RotateKey(ctx context.Context, enclaveName, name, identity string) (int, error)
	SetMinVersion(ctx context.Context, enclaveName, name string, minVersion int, identity string) error
	Rewrap(ctx context.Context, enclaveName, name string, ciphertext, associatedData []byte) ([]byte, error)
	// DestroyVersion deletes a retired version's material for good.
	DestroyVersion(ctx context.Context, enclaveName, name string, version int, identity string) error

	DescribePolicy(ctx context.Context, enclaveName, name string) (enclave.PolicyInfo, error)
	ReadPolicy(ctx context.Context, enclaveName, name string) (enclave.Policy, error)
	ListPolicies(ctx context.Context, enclaveName, prefix string) ([]string, error)
	DescribeIdentity(ctx context.Context, enclaveName, identity string) (enclave.IdentityInfo, error)
	// ListIdentities includes the enclave's admin identity when it matches
	// prefix.
	ListIdentities(ctx context.Context, enclaveName, prefix string) ([]string, error)
	// SelfDescribe describes identity with its policy rules (PolicyRules nil
	// for the admin); an identity without a policy is kes.ErrIdentityNotFound.
	// Besides /v1/identity/self/describe, the api calls it after a denial to
	// apply the bare-path policy rule (see Server.authorize).
	SelfDescribe(ctx context.Context, enclaveName, identity string) (enclave.SelfInfo, error)

	// KeystoreStatus reports the keystore's health: its latency, or an error
	// that wraps store.ErrUnreachable when it cannot be reached.
	KeystoreStatus(ctx context.Context) (latency time.Duration, err error)
}
