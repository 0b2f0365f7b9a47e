package enclave

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyraft/keyraft/internal/kes"
)

// ValidName reports whether s is a valid key, policy, identity or enclave
// name: 1 to 80 bytes of [0-9A-Za-z_-], '-' neither first nor last, and not
// the single name "_" (KES's validName).
func ValidName(s string) bool {
	if s == "" || len(s) > 80 || s == "_" {
		return false
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return false
		}
	}
	return true
}

// ValidPattern reports whether s is a valid listing pattern: empty, "*",
// or up to 80 bytes of the name alphabet with '*' allowed only as the last
// character (KES's validPattern).
func ValidPattern(s string) bool {
	if s == "" || s == "*" {
		return true
	}
	if len(s) > 80 {
		return false
	}
	body := strings.TrimSuffix(s, "*")
	for i := 0; i < len(body); i++ {
		if !nameChar(body[i]) {
			return false
		}
	}
	return true
}

func nameChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}

// The 400s KES answers for invalid names. The api package and the leader's
// validation of forwarded operations both use them, so a name is refused
// with the same words wherever it is checked.

// InvalidKeyName returns the 400 kes.Error for an invalid key name.
func InvalidKeyName(name string) kes.Error {
	return kes.NewError(http.StatusBadRequest, "key name '%s' is empty, too long or contains invalid characters", name)
}

// InvalidPolicyName returns the 400 kes.Error for an invalid policy name.
func InvalidPolicyName(name string) kes.Error {
	return kes.NewError(http.StatusBadRequest, "policy name '%s' is empty, too long or contains invalid characters", name)
}

// InvalidIdentity returns the 400 kes.Error for an invalid identity.
func InvalidIdentity(id string) kes.Error {
	return kes.NewError(http.StatusBadRequest, "identity '%s' is empty, too long or contains invalid characters", id)
}

// InvalidEnclaveName returns the 400 kes.Error for an invalid enclave name.
func InvalidEnclaveName(name string) kes.Error {
	return kes.NewError(http.StatusBadRequest, "enclave name '%s' is empty, too long or contains invalid characters", name)
}

// Keystore names. Keys of the default enclave are stored under their plain
// names, as KES stores them; keys of any other enclave under
// "keyraft.e.<enclave>.<key>". Every other name that starts with
// "keyraft." (SealName) is reserved for the cluster. Valid names contain no
// '.', so no (enclave, key) pair maps onto a reserved name or into another
// enclave's namespace.
const (
	reservedPrefix = "keyraft."
	enclavePrefix  = reservedPrefix + "e."
)

// errStoreName is wrapped by the errors of storeName and enclaveNamespace.
// Operations are validated before they get there, so it marks an internal
// bug, never a client error.
var errStoreName = errors.New("enclave: refusing to address the keystore with an invalid or reserved name")

// storeName maps a key of an enclave to its keystore entry name. It is the
// only place that does, and it refuses (with an error wrapping
// errStoreName) every enclave or key name that is not valid, so no code
// path can read, create or delete a reserved entry such as SealName, or an
// entry of another enclave.
func storeName(enclave, name string) (string, error) {
	if !ValidName(enclave) || !ValidName(name) {
		return "", fmt.Errorf("%w: enclave %q, key %q", errStoreName, enclave, name)
	}
	sn := name
	if enclave != DefaultEnclave {
		sn = enclavePrefix + enclave + "." + name
	}
	if reserved(sn) && !strings.HasPrefix(sn, enclavePrefix) {
		return "", fmt.Errorf("%w: %q", errStoreName, sn)
	}
	return sn, nil
}

// reserved reports whether a keystore name belongs to the cluster rather
// than to the default enclave.
func reserved(storeName string) bool { return strings.HasPrefix(storeName, reservedPrefix) }

// listPrefix returns the keystore prefix under which an enclave's keys
// are listed: "" for the default enclave (whose listing must skip
// reserved and namespaced entries), the enclave's namespace otherwise.
func listPrefix(enclave string) (string, error) {
	if enclave == DefaultEnclave {
		return "", nil
	}
	return enclaveNamespace(enclave)
}

// enclaveNamespace returns the keystore prefix that holds exactly the keys
// of a non-default enclave. It refuses (wrapping errStoreName) the default
// enclave, whose keys have no prefix of their own, and invalid names, so
// that deleting "everything under an enclave's namespace" can never
// delete another enclave's keys or a reserved entry.
func enclaveNamespace(enclave string) (string, error) {
	if enclave == DefaultEnclave || !ValidName(enclave) {
		return "", fmt.Errorf("%w: enclave namespace of %q", errStoreName, enclave)
	}
	return enclavePrefix + enclave + ".", nil
}
