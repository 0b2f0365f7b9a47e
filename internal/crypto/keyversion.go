package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// KeyVersion is a stored KES key: the secret key, its HMAC key and creation
// metadata (spec §5.5).
//
// HMAC is nil for keys read from the legacy JSON format; such keys cannot
// compute HMACs (KES answers 409). HMAC is a pointer, so plain copies of a
// KeyVersion share the HMAC key; use Clone for an independent copy before
// calling Zero on one of them.
type KeyVersion struct {
	Key       SecretKey
	HMAC      *HMACKey
	CreatedAt time.Time
	CreatedBy string
	// NoAlgorithm is true for legacy JSON keys that recorded no algorithm.
	// Such keys are AES256 (Key.Type), but Decrypt honours the algorithm
	// recorded in a legacy (MessagePack/JSON) ciphertext, as KES 2023 did:
	// old servers without AES hardware encrypted with ChaCha20 under them.
	NoAlgorithm bool
}

// NewKeyVersion returns a key version with a random secret key of type t, a
// random HMAC key, CreatedAt = now in UTC (monotonic reading stripped) and
// CreatedBy = createdBy. It returns an error wrapping
// ErrUnsupportedAlgorithm for an invalid t, or an error if the system random
// source fails.
func NewKeyVersion(t KeyType, createdBy string, now time.Time) (KeyVersion, error) {
	key, err := GenerateSecretKey(t, nil)
	if err != nil {
		return KeyVersion{}, err
	}
	mac, err := GenerateHMACKey(nil)
	if err != nil {
		key.Zero()
		return KeyVersion{}, err
	}
	return KeyVersion{Key: key, HMAC: &mac, CreatedAt: now.UTC().Round(0), CreatedBy: createdBy}, nil
}

// ImportKeyVersion builds a key version from caller-supplied key bytes, as
// the KES import endpoint does: cipher must be a name ParseKeyType accepts
// (otherwise, including "", an error wrapping ErrUnsupportedAlgorithm) and
// key must be exactly 32 bytes (otherwise an error wrapping
// ErrInvalidKeySize). The HMAC key is freshly random, not derived from key.
// key is copied; the caller should zero its own buffer.
func ImportKeyVersion(key []byte, cipher string, createdBy string, now time.Time) (KeyVersion, error) {
	t, err := ParseKeyType(cipher)
	if err != nil {
		return KeyVersion{}, err
	}
	if len(key) != KeySize {
		return KeyVersion{}, fmt.Errorf("%w: got %d bytes, want %d", ErrInvalidKeySize, len(key), KeySize)
	}
	mac, err := GenerateHMACKey(nil)
	if err != nil {
		return KeyVersion{}, err
	}
	v := KeyVersion{Key: SecretKey{Type: t}, HMAC: &mac, CreatedAt: now.UTC().Round(0), CreatedBy: createdBy}
	copy(v.Key.Key[:], key)
	return v, nil
}

// Encrypt is v.Key.Encrypt: it seals plaintext under the key's type in the
// raw format. Errors are those of SecretKey.Encrypt.
func (v KeyVersion) Encrypt(plaintext, ad []byte) ([]byte, error) {
	return v.Key.Encrypt(plaintext, ad)
}

// Decrypt is SecretKey.Decrypt, except that for a key without a recorded
// algorithm (NoAlgorithm) a legacy MessagePack or JSON ciphertext is opened
// with the algorithm recorded in the ciphertext. Raw ciphertexts always use
// v.Key.Type. Every failure returns ErrDecrypt.
func (v KeyVersion) Decrypt(ciphertext, ad []byte) ([]byte, error) {
	raw, alg, legacy := normalizeCiphertext(ciphertext)
	t := v.Key.Type
	if legacy && v.NoAlgorithm {
		t = alg
	}
	return v.Key.decryptRaw(t, raw, ad)
}

// Clone returns a deep copy of v whose HMAC key is not shared with v.
func (v KeyVersion) Clone() KeyVersion {
	if v.HMAC != nil {
		mac := *v.HMAC
		v.HMAC = &mac
	}
	return v
}

// Zero overwrites the secret key and the HMAC key v.HMAC points to, then sets
// v.HMAC to nil. The HMAC key is shared with every plain copy of v, so those
// copies lose their HMAC key material too; Clone first if copies stay in use.
func (v *KeyVersion) Zero() {
	v.Key.Zero()
	if v.HMAC != nil {
		v.HMAC.Zero()
		v.HMAC = nil
	}
}

// EncodeKeyVersion returns the KES 2024+ stored form of v: standard padded
// base64 of the protobuf KeyVersion message (§5.5). It returns an error
// wrapping ErrInvalidKeyVersion if v has an invalid key type or no HMAC key
// (legacy keys cannot be written in this format), or if CreatedBy is not
// valid UTF-8 (proto3 strings must be).
func EncodeKeyVersion(v KeyVersion) ([]byte, error) {
	if !v.Key.Type.valid() {
		return nil, fmt.Errorf("%w: %w: key type %d", ErrInvalidKeyVersion, ErrUnsupportedAlgorithm, v.Key.Type)
	}
	if v.HMAC == nil {
		return nil, fmt.Errorf("%w: missing HMAC key", ErrInvalidKeyVersion)
	}
	if !utf8.ValidString(v.CreatedBy) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKeyVersion, errInvalidUTF8)
	}
	msg := marshalKeyVersionPB(&v)
	defer clear(msg)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(msg)))
	base64.StdEncoding.Encode(out, msg)
	return out, nil
}

// ParseKeyVersion decodes a stored key version. If b is valid JSON it is read
// as the legacy JSON format (fields bytes, algorithm, created_at, created_by;
// others ignored; HMAC nil; absent or empty algorithm means AES256 with
// NoAlgorithm set). Otherwise b, with surrounding white space trimmed, must
// be standard base64 of the protobuf message, whose secret and HMAC keys
// must both be present with 32 bytes and a known type/hash.
//
// All errors wrap ErrInvalidKeyVersion, and additionally ErrInvalidKeySize
// or ErrUnsupportedAlgorithm where that is the cause.
func ParseKeyVersion(b []byte) (KeyVersion, error) {
	if json.Valid(b) {
		return parseLegacyKeyVersion(b)
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return KeyVersion{}, fmt.Errorf("%w: not JSON and not base64: %w", ErrInvalidKeyVersion, err)
	}
	defer clear(raw)
	v, err := unmarshalKeyVersionPB(raw)
	if err != nil {
		return KeyVersion{}, fmt.Errorf("%w: %w", ErrInvalidKeyVersion, err)
	}
	return v, nil
}

// parseLegacyKeyVersion decodes the JSON format written by KES <= 2023.
func parseLegacyKeyVersion(b []byte) (KeyVersion, error) {
	var value struct {
		Bytes     []byte    `json:"bytes"`
		Algorithm string    `json:"algorithm"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by"`
	}
	defer func() { clear(value.Bytes) }()
	if err := json.Unmarshal(b, &value); err != nil {
		return KeyVersion{}, fmt.Errorf("%w: legacy JSON: %w", ErrInvalidKeyVersion, err)
	}

	v := KeyVersion{CreatedAt: value.CreatedAt.UTC(), CreatedBy: value.CreatedBy}
	if value.Algorithm == "" {
		v.Key.Type, v.NoAlgorithm = AES256, true
	} else {
		t, err := ParseKeyType(value.Algorithm)
		if err != nil {
			return KeyVersion{}, fmt.Errorf("%w: legacy JSON: %w", ErrInvalidKeyVersion, err)
		}
		v.Key.Type = t
	}
	if len(value.Bytes) != KeySize {
		return KeyVersion{}, fmt.Errorf("%w: legacy JSON: %w: got %d bytes", ErrInvalidKeyVersion, ErrInvalidKeySize, len(value.Bytes))
	}
	copy(v.Key.Key[:], value.Bytes)
	return v, nil
}
