package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key versions (Keyraft; KES has none, spec §5.4). A key rotated n-1 times
// has versions 1..n. Version 1 is the key KES knows and its ciphertexts
// are KES's raw format, byte for byte. Ciphertexts of a version n ≥ 2 are
//
//	"KRV" || n (uint32, big endian) || raw ciphertext of version n
//
// where the raw ciphertext's associated data is the 7-byte header followed
// by the caller's associated data, so the version is authenticated. KES
// parses such a ciphertext as raw (its first byte is neither 0x95 nor
// 0x7b), its version-1 key fails to authenticate it, and it answers its
// normal decrypt error. A KES raw ciphertext that happens to start with the
// header is still decrypted correctly: Decrypt falls back to version 1
// when the named version does not authenticate it.

// versionMagic starts the header of a version ≥ 2 ciphertext.
const versionMagic = "KRV"

// VersionHeaderLen is the length of a version ≥ 2 ciphertext's header.
const VersionHeaderLen = len(versionMagic) + 4

// ErrVersionRetired is returned (wrapped) by Versions.Decrypt for an
// authentic ciphertext of a version below the key's minimum decryption
// version.
var ErrVersionRetired = errors.New("crypto: key version is retired")

// Versions is a key's versions, oldest first (List[i] is version i+1),
// with the lowest version that may still decrypt (Min; 0 or 1: all). A
// destroyed version (its material deleted after it was retired) is a zero
// KeyVersion. Versions is read-only once built and safe for concurrent
// use.
type Versions struct {
	List []KeyVersion
	Min  int
}

// Newest returns the newest version number.
func (v *Versions) Newest() int { return len(v.List) }

// versionHeader returns the header of version n's ciphertexts.
func versionHeader(n int) []byte {
	h := make([]byte, VersionHeaderLen, VersionHeaderLen+64)
	copy(h, versionMagic)
	binary.BigEndian.PutUint32(h[len(versionMagic):], uint32(n))
	return h
}

// CiphertextVersion returns the version a ciphertext names in its header,
// or 1 for a ciphertext without one (every KES format). The header is not
// authenticated here: Decrypt does that.
func CiphertextVersion(ciphertext []byte) int {
	if len(ciphertext) <= VersionHeaderLen || string(ciphertext[:len(versionMagic)]) != versionMagic {
		return 1
	}
	n := binary.BigEndian.Uint32(ciphertext[len(versionMagic):VersionHeaderLen])
	if n < 2 || n > 1<<20 {
		return 1
	}
	return int(n)
}

// Encrypt encrypts plaintext under the newest version and returns the
// ciphertext and the version used. With one version it is exactly
// KeyVersion.Encrypt (KES's raw format). Errors are those of
// SecretKey.Encrypt, or one for a key without versions.
func (v *Versions) Encrypt(plaintext, ad []byte) ([]byte, int, error) {
	return v.EncryptWith(len(v.List), plaintext, ad)
}

// EncryptWith encrypts plaintext under version n (1 ≤ n ≤ Newest).
func (v *Versions) EncryptWith(n int, plaintext, ad []byte) ([]byte, int, error) {
	if n < 1 || n > len(v.List) {
		return nil, 0, fmt.Errorf("crypto: key has no version %d", n)
	}
	if v.List[n-1].Destroyed() {
		return nil, 0, fmt.Errorf("crypto: version %d was destroyed", n)
	}
	if n == 1 {
		ct, err := v.List[0].Encrypt(plaintext, ad)
		return ct, 1, err
	}
	h := versionHeader(n)
	ct, err := v.List[n-1].Encrypt(plaintext, append(h, ad...))
	if err != nil {
		return nil, 0, err
	}
	return append(h[:VersionHeaderLen:VersionHeaderLen], ct...), n, nil
}

// Decrypt decrypts a ciphertext of any version and any KES format and
// returns the plaintext and the version that decrypted it. It returns
// ErrDecrypt if no version authenticates it, and an error wrapping
// ErrVersionRetired (and no plaintext) for a version below Min.
func (v *Versions) Decrypt(ciphertext, ad []byte) ([]byte, int, error) {
	if n := CiphertextVersion(ciphertext); n >= 2 && n <= len(v.List) && v.List[n-1].Destroyed() {
		return nil, n, fmt.Errorf("%w: version %d was destroyed", ErrVersionRetired, n)
	} else if n >= 2 && n <= len(v.List) {
		h := ciphertext[:VersionHeaderLen]
		aad := make([]byte, 0, VersionHeaderLen+len(ad))
		pt, err := v.List[n-1].Decrypt(ciphertext[VersionHeaderLen:], append(append(aad, h...), ad...))
		if err == nil {
			return v.admit(pt, n)
		}
	}
	if len(v.List) == 0 {
		return nil, 0, ErrDecrypt
	}
	pt, err := v.List[0].Decrypt(ciphertext, ad)
	if err != nil {
		return nil, 0, err
	}
	return v.admit(pt, 1)
}

// Destroyed reports whether a version's material was destroyed: it is
// the zero KeyVersion that stands in for it.
func (v KeyVersion) Destroyed() bool { return !v.Key.Type.valid() }

// admit returns pt for version n unless n is retired.
func (v *Versions) admit(pt []byte, n int) ([]byte, int, error) {
	if n < v.Min {
		clear(pt)
		return nil, n, fmt.Errorf("%w: version %d, the key decrypts from version %d", ErrVersionRetired, n, v.Min)
	}
	return pt, n, nil
}

// Zero zeroes every version.
func (v *Versions) Zero() {
	for i := range v.List {
		v.List[i].Zero()
	}
}
