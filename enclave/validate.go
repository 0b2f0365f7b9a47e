package enclave

import (
	"net/http"

	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
)

// Limits the leader enforces on every operation, forwarded or its own.
const (
	// maxPolicySize bounds a policy's rules. Each allow or deny pattern
	// counts its length plus 3 bytes (two quotes and a separator, the
	// least its JSON needs), and the sum may not exceed the API's request
	// body limit (KES's "1 MB", 1,000,000 bytes): every policy the API can
	// accept passes, nothing larger does.
	maxPolicySize = 1_000_000
)

// Refusals of operations that the API cannot produce.
var (
	errPolicyTooLarge = kes.Error{Code: http.StatusBadRequest, Message: "policy is too large"}
	errAssignAdmin    = kes.Error{Code: http.StatusBadRequest, Message: "the admin identity cannot be assigned to a policy"}
)

// errUnsupportedCipher and errKeySize are ImportKey's 406s.
func errUnsupportedCipher(cipher string) kes.Error {
	return kes.NewError(http.StatusNotAcceptable, "algorithm '%s' is not supported", cipher)
}

func errKeySize(cipher string) kes.Error {
	return kes.NewError(http.StatusNotAcceptable, "invalid key size for '%s'", cipher)
}

// validate checks an operation's names and sizes as the API checks a
// request: every enclave, key, policy and identity name must be valid
// (ValidName), imported key material 32 bytes of a supported algorithm,
// a policy's rules at most maxPolicySize. It returns the client-visible kes.Error (400,
// or 406 for imported key material, with the API's messages) and nil for a
// well-formed op. It is pure: existence and permissions are checked later.
func validate(op Op) error {
	if !ValidName(op.Enclave) {
		return InvalidEnclaveName(op.Enclave)
	}
	switch op.Kind {
	case OpCreateKey, OpDeleteKey, OpLoadKey, OpProtectKey, OpUnprotectKey, OpRestoreKey, OpPurgeKey, OpRotateKey, OpSetMinVersion, OpDestroyVersion:
		return validKeyName(op.Name)
	case OpImportKey:
		if err := validKeyName(op.Name); err != nil {
			return err
		}
		if _, err := crypto.ParseKeyType(op.Cipher); err != nil {
			return errUnsupportedCipher(op.Cipher)
		}
		if len(op.Key) != crypto.KeySize {
			return errKeySize(op.Cipher)
		}
	case OpCreateEnclave:
		if !ValidName(op.Admin) {
			return InvalidIdentity(op.Admin)
		}
	case OpDeleteEnclave, OpMarkRecovered, OpRotateSeal:
	case OpWritePolicy:
		if !ValidName(op.Name) {
			return InvalidPolicyName(op.Name)
		}
		size := 0
		for _, rules := range [][]string{op.Allow, op.Deny} {
			for _, r := range rules {
				if size += len(r) + 3; size > maxPolicySize {
					return errPolicyTooLarge
				}
			}
		}
	case OpDeletePolicy:
		if !ValidName(op.Name) {
			return InvalidPolicyName(op.Name)
		}
	case OpAssignPolicy:
		if !ValidName(op.Name) {
			return InvalidPolicyName(op.Name)
		}
		if !ValidName(op.Assignee) {
			return InvalidIdentity(op.Assignee)
		}
	case OpDeleteIdentity:
		if !ValidName(op.Assignee) {
			return InvalidIdentity(op.Assignee)
		}
	default:
		return kes.NewError(http.StatusBadRequest, "unknown operation '%s'", op.Kind)
	}
	return nil
}

func validKeyName(name string) error {
	if !ValidName(name) {
		return InvalidKeyName(name)
	}
	return nil
}
