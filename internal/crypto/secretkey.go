package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the raw ciphertext layout: sealed || iv || nonce.
const (
	ivSize    = 16
	nonceSize = 12
	tagSize   = 16
	// randSize is the number of random bytes drawn per message (iv||nonce).
	randSize = ivSize + nonceSize
	// Overhead is the size difference between a plaintext and the raw
	// ciphertext Encrypt produces (28 random bytes + 16-byte tag).
	Overhead = randSize + tagSize
)

// SecretKey is a 32-byte master key together with its cipher. It is a plain
// value: copies are independent, and a SecretKey is safe for concurrent use
// by multiple goroutines as long as none of them calls Zero.
type SecretKey struct {
	Type KeyType
	Key  [KeySize]byte
}

// GenerateSecretKey returns a SecretKey of type t with 32 bytes read from
// random (crypto/rand.Reader if random is nil). It returns an error wrapping
// ErrUnsupportedAlgorithm for an invalid t, or the read error if random
// fails.
func GenerateSecretKey(t KeyType, random io.Reader) (SecretKey, error) {
	if !t.valid() {
		return SecretKey{}, fmt.Errorf("%w: key type %d", ErrUnsupportedAlgorithm, t)
	}
	if random == nil {
		random = rand.Reader
	}
	k := SecretKey{Type: t}
	if _, err := io.ReadFull(random, k.Key[:]); err != nil {
		k.Zero()
		return SecretKey{}, fmt.Errorf("crypto: generating secret key: %w", err)
	}
	return k, nil
}

// Encrypt seals plaintext and authenticates associatedData (the KES
// "context"; nil and empty are equivalent). The result uses the raw format
// produced by KES since 2024: sealed || iv(16) || nonce(12), with fresh
// random iv and nonce from crypto/rand, so two calls never return the same
// ciphertext. Neither argument is modified or retained.
//
// It returns an error wrapping ErrUnsupportedAlgorithm if k.Type is invalid
// (e.g. after Zero), or the error of the random source.
func (k SecretKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	if !k.Type.valid() {
		return nil, fmt.Errorf("%w: key type %d", ErrUnsupportedAlgorithm, k.Type)
	}
	var random [randSize]byte
	if _, err := rand.Read(random[:]); err != nil {
		return nil, fmt.Errorf("crypto: reading random nonce: %w", err)
	}
	iv, nonce := random[:ivSize], random[ivSize:]

	aead, err := messageAEAD(k.Type, &k.Key, iv)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(plaintext)+Overhead)
	out = aead.Seal(out, nonce, plaintext, associatedData)
	return append(out, random[:]...), nil
}

// Decrypt opens a ciphertext produced by any KES version under this key:
// the raw format, MessagePack (first byte 0x95) or JSON (first byte '{').
// A legacy ciphertext that fails to parse is treated as raw. As in KES since
// 2024, the key's own type selects the AEAD; the algorithm and key id
// recorded in legacy ciphertexts are ignored (see KeyVersion.Decrypt for
// algorithm-less keys). The ciphertext is not modified.
//
// Every failure (malformed, too short, wrong key, wrong associated data,
// invalid key type) returns ErrDecrypt.
func (k SecretKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	raw, _, _ := normalizeCiphertext(ciphertext)
	return k.decryptRaw(k.Type, raw, associatedData)
}

// decryptRaw opens a raw-layout ciphertext with the AEAD of type t.
func (k *SecretKey) decryptRaw(t KeyType, raw, associatedData []byte) ([]byte, error) {
	if len(raw) <= randSize || !t.valid() {
		return nil, ErrDecrypt
	}
	sealed, random := raw[:len(raw)-randSize], raw[len(raw)-randSize:]
	iv, nonce := random[:ivSize], random[ivSize:]

	aead, err := messageAEAD(t, &k.Key, iv)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := aead.Open(nil, nonce, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// messageAEAD derives the per-message key from the master key and iv and
// returns the AEAD for type t (spec §5.2). The derived key is zeroed before
// returning; the AEAD keeps its own expanded copy.
func messageAEAD(t KeyType, master *[KeySize]byte, iv []byte) (cipher.AEAD, error) {
	switch t {
	case AES256:
		prf := hmac.New(sha256.New, master[:])
		prf.Write(iv)
		var key [sha256.Size]byte
		prf.Sum(key[:0])
		defer clear(key[:])
		block, err := aes.NewCipher(key[:])
		if err != nil {
			return nil, fmt.Errorf("crypto: AES-256: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("crypto: AES-256-GCM: %w", err)
		}
		return aead, nil
	case ChaCha20:
		key, err := chacha20.HChaCha20(master[:], iv)
		if err != nil {
			return nil, fmt.Errorf("crypto: HChaCha20: %w", err)
		}
		defer clear(key)
		aead, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, fmt.Errorf("crypto: ChaCha20-Poly1305: %w", err)
		}
		return aead, nil
	default:
		return nil, fmt.Errorf("%w: key type %d", ErrUnsupportedAlgorithm, t)
	}
}

// Zero overwrites the key bytes and resets the type to the invalid zero
// value, so a zeroed key can no longer encrypt or decrypt. It affects only
// this value, not copies of it.
func (k *SecretKey) Zero() {
	clear(k.Key[:])
	k.Type = 0
}

// HMACKey is a 32-byte HMAC key; the hash function is always SHA-256 (the
// only one KES defines, protobuf Hash = 1). It is a plain value, safe for
// concurrent use as long as nobody calls Zero.
type HMACKey struct {
	Key [KeySize]byte
}

// GenerateHMACKey returns an HMACKey with 32 bytes read from random
// (crypto/rand.Reader if random is nil). It returns the read error if random
// fails.
func GenerateHMACKey(random io.Reader) (HMACKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var h HMACKey
	if _, err := io.ReadFull(random, h.Key[:]); err != nil {
		h.Zero()
		return HMACKey{}, fmt.Errorf("crypto: generating HMAC key: %w", err)
	}
	return h, nil
}

// Sum returns HMAC-SHA256(h.Key, message), 32 bytes. It never fails.
func (h HMACKey) Sum(message []byte) []byte {
	mac := hmac.New(sha256.New, h.Key[:])
	mac.Write(message)
	return mac.Sum(make([]byte, 0, sha256.Size))
}

// Equal reports, in constant time with respect to the contents, whether two
// MACs are equal.
func (HMACKey) Equal(mac1, mac2 []byte) bool { return hmac.Equal(mac1, mac2) }

// Zero overwrites the key bytes of h.
func (h *HMACKey) Zero() { clear(h.Key[:]) }
