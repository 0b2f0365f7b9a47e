// Package crypto implements the KES key and ciphertext formats (spec
// kes-api.md §5): secret keys (AES256 / ChaCha20) with per-message derived
// keys, HMAC-SHA256 keys, the three ciphertext encodings KES has produced
// (raw, MessagePack, JSON) and the two stored key-version encodings (base64
// protobuf and legacy JSON).
//
// The package is a clean-room implementation from the specification; it
// imports no KES code. All functions are safe for concurrent use; values of
// SecretKey, HMACKey and KeyVersion are safe for concurrent reads but must not
// be mutated (for example with Zero) while other goroutines use them.
package crypto

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/cpu"
)

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// additional context.
var (
	// ErrDecrypt reports that a ciphertext could not be decrypted: it is
	// malformed, too short, not authentic, or the associated data differs.
	// It deliberately carries no detail about which check failed.
	ErrDecrypt = errors.New("crypto: decryption failed: ciphertext is not authentic")

	// ErrUnsupportedAlgorithm reports an unknown key type or algorithm name.
	ErrUnsupportedAlgorithm = errors.New("crypto: unsupported algorithm")

	// ErrInvalidKeySize reports key material that is not exactly 32 bytes.
	ErrInvalidKeySize = errors.New("crypto: invalid key size")

	// ErrInvalidKeyVersion reports a stored key version that cannot be
	// decoded or encoded.
	ErrInvalidKeyVersion = errors.New("crypto: invalid key version")
)

// KeySize is the size in bytes of secret and HMAC keys.
const KeySize = 32

// KeyType is the cipher of a secret key, using the KES server-internal
// numbering (also the protobuf SecretKey.Type value): AES256 = 1,
// ChaCha20 = 2. The zero value is invalid.
type KeyType uint8

// The supported key types.
const (
	// AES256 derives a per-message key with HMAC-SHA256 and seals with
	// AES-256-GCM.
	AES256 KeyType = 1
	// ChaCha20 derives a per-message key with HChaCha20 and seals with
	// ChaCha20-Poly1305 (IETF).
	ChaCha20 KeyType = 2
)

// ParseKeyType parses the textual algorithm names KES accepts: "AES256" and
// "AES256-GCM_SHA256" yield AES256; "ChaCha20" and "XCHACHA20-POLY1305" yield
// ChaCha20. Matching is exact (case-sensitive). Any other input, including
// the empty string, returns an error wrapping ErrUnsupportedAlgorithm.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "AES256", "AES256-GCM_SHA256":
		return AES256, nil
	case "ChaCha20", "XCHACHA20-POLY1305":
		return ChaCha20, nil
	default:
		return 0, fmt.Errorf("%w: key type %q", ErrUnsupportedAlgorithm, s)
	}
}

// String returns "AES256" or "ChaCha20", the names KES reports in key
// descriptions. Invalid values render as "!INVALID:<n>".
func (t KeyType) String() string {
	switch t {
	case AES256:
		return "AES256"
	case ChaCha20:
		return "ChaCha20"
	default:
		return "!INVALID:" + strconv.Itoa(int(t))
	}
}

// valid reports whether t is a supported key type.
func (t KeyType) valid() bool { return t == AES256 || t == ChaCha20 }

// DefaultKeyType returns the key type KES chooses for new keys: AES256 when
// the CPU has hardware support for AES-GCM, ChaCha20 otherwise. It never
// fails and is safe for concurrent use.
func DefaultKeyType() KeyType {
	if hasAESGCM() {
		return AES256
	}
	return ChaCha20
}

// hasAESGCM reports whether Go's AES-GCM runs on dedicated CPU instructions.
func hasAESGCM() bool {
	if runtime.GOARCH == "ppc64le" { // always has the vector crypto unit Go uses
		return true
	}
	switch {
	case cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ:
		return true
	case cpu.ARM64.HasAES && cpu.ARM64.HasPMULL:
		return true
	case cpu.S390X.HasAES && cpu.S390X.HasAESCBC && cpu.S390X.HasAESCTR &&
		(cpu.S390X.HasGHASH || cpu.S390X.HasAESGCM):
		return true
	default:
		return false
	}
}

// KeyID returns the legacy KES key id of a secret key: the lower-case hex
// encoding of the first 16 bytes of SHA-256(key). Legacy (MessagePack and
// JSON) ciphertexts may carry it; it never fails.
func KeyID(key [KeySize]byte) string {
	sum := sha256.Sum256(key[:])
	return hex.EncodeToString(sum[:16])
}
