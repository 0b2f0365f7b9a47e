package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// apiKeyPrefix is the text prefix of version-1 API keys.
const apiKeyPrefix = "kes:v1:"

// apiKeyEd25519 is the type byte of an Ed25519 API key.
const apiKeyEd25519 = 0x00

// apiKeyCertValidity is how long APIKey.Certificate certificates are valid.
const apiKeyCertValidity = 90 * 24 * time.Hour

// ErrInvalidAPIKey is wrapped by every ParseAPIKey and APIKeyFromPrivateKey error.
var ErrInvalidAPIKey = errors.New("identity: invalid API key")

// APIKey is a KES API key: an Ed25519 private key. Its text form is
// "kes:v1:" followed by the standard (padded) base64 encoding of the type byte
// 0x00 and the 32-byte Ed25519 seed. The zero value is not a usable key:
// String and Identity return "" and Certificate fails.
type APIKey struct {
	key ed25519.PrivateKey
}

// GenerateAPIKey returns a new API key whose seed is read from random
// (crypto/rand.Reader when random is nil). It fails only if reading the 32
// seed bytes fails; that error is wrapped.
func GenerateAPIKey(random io.Reader) (APIKey, error) {
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	defer clear(seed)
	if _, err := io.ReadFull(random, seed); err != nil {
		return APIKey{}, fmt.Errorf("identity: generate API key: %w", err)
	}
	return APIKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParseAPIKey parses the text form of an API key. Surrounding white space is
// ignored. Every error wraps ErrInvalidAPIKey: a missing "kes:v1:" prefix,
// invalid base64, a decoded length other than 33 bytes or an unknown type byte.
// Error messages never contain key material.
func ParseAPIKey(s string) (APIKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, apiKeyPrefix)
	if !ok {
		return APIKey{}, fmt.Errorf("%w: missing %q prefix", ErrInvalidAPIKey, apiKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	defer clear(raw)
	if err != nil {
		return APIKey{}, fmt.Errorf("%w: not base64", ErrInvalidAPIKey)
	}
	if len(raw) != 1+ed25519.SeedSize {
		return APIKey{}, fmt.Errorf("%w: %d bytes instead of %d", ErrInvalidAPIKey, len(raw), 1+ed25519.SeedSize)
	}
	if raw[0] != apiKeyEd25519 {
		return APIKey{}, fmt.Errorf("%w: unknown key type %#x", ErrInvalidAPIKey, raw[0])
	}
	return APIKey{key: ed25519.NewKeyFromSeed(raw[1:])}, nil
}

// APIKeyFromPrivateKey returns the API key of an Ed25519 private key, e.g. one
// read from a PKCS#8 PEM file. It fails, wrapping ErrInvalidAPIKey, when the
// key does not have ed25519.PrivateKeySize bytes. The key is copied.
func APIKeyFromPrivateKey(priv ed25519.PrivateKey) (APIKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return APIKey{}, fmt.Errorf("%w: ed25519 private key has %d bytes", ErrInvalidAPIKey, len(priv))
	}
	return APIKey{key: ed25519.NewKeyFromSeed(priv.Seed())}, nil
}

// String returns the text form "kes:v1:<base64>" of k, or "" for the zero
// APIKey. The result is a secret.
func (k APIKey) String() string {
	if len(k.key) == 0 {
		return ""
	}
	raw := make([]byte, 0, 1+ed25519.SeedSize)
	raw = append(raw, apiKeyEd25519)
	raw = append(raw, k.key.Seed()...)
	defer clear(raw)
	return apiKeyPrefix + base64.StdEncoding.EncodeToString(raw)
}

// Identity returns the identity of k: the identity of any certificate carrying
// its public key. It returns "" for the zero APIKey.
func (k APIKey) Identity() string {
	if len(k.key) == 0 {
		return ""
	}
	id, err := OfPublicKey(k.key.Public())
	if err != nil { // unreachable: Ed25519 keys always marshal
		return ""
	}
	return id
}

// PrivateKey returns a copy of the Ed25519 private key of k (nil for the zero
// APIKey). Callers should clear it when done.
func (k APIKey) PrivateKey() ed25519.PrivateKey {
	if len(k.key) == 0 {
		return nil
	}
	return bytes.Clone(k.key)
}

// Equal reports, in constant time, whether k and other are the same key.
func (k APIKey) Equal(other APIKey) bool {
	return k.key.Equal(other.key)
}

// Certificate returns a self-signed TLS client certificate for k, as KES
// clients derive it: random 128-bit serial, subject CN = k.Identity(), valid
// from now for 90 days, key usage DigitalSignature, extended key usage
// ClientAuth, basic constraints valid and not a CA. The server computes the
// same identity from it. It fails for the zero APIKey or if certificate
// creation fails (wrapped).
func (k APIKey) Certificate() (tls.Certificate, error) {
	if len(k.key) == 0 {
		return tls.Certificate{}, fmt.Errorf("%w: empty key", ErrInvalidAPIKey)
	}
	key := k.PrivateKey()
	cert, der, err := SelfSigned(key, CertOptions{
		Subject:    k.Identity(),
		Expiry:     apiKeyCertValidity,
		ClientAuth: true,
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}
