package crypto

import (
	"encoding/json"

	"github.com/tinylib/msgp/msgp"
)

// First bytes that announce the legacy ciphertext encodings (spec §5.3).
const (
	msgpFixArray5 = 0x95 // MessagePack fixarray with 5 elements (2022-03 .. 2024-01)
	jsonObject    = '{'  // JSON object (<= 2022-03)
)

// Algorithm names recorded in legacy JSON ciphertexts.
const (
	jsonAEADAES256   = "AES-256-GCM-HMAC-SHA-256"
	jsonAEADChaCha20 = "ChaCha20Poly1305"
)

// normalizeCiphertext converts any ciphertext encoding into the raw layout
// sealed || iv || nonce. For a MessagePack or JSON ciphertext that parses, it
// returns a new slice, the algorithm recorded in it and legacy = true. For
// anything else (including legacy-looking input that fails to parse) it
// returns b unchanged, 0 and false. b is never modified.
func normalizeCiphertext(b []byte) (raw []byte, alg KeyType, legacy bool) {
	if len(b) == 0 {
		return b, 0, false
	}
	var (
		c  legacyCiphertext
		ok bool
	)
	switch b[0] {
	case msgpFixArray5:
		ok = c.parseMsgp(b)
	case jsonObject:
		ok = c.parseJSON(b)
	}
	if !ok {
		return b, 0, false
	}
	raw = make([]byte, 0, len(c.sealed)+randSize)
	raw = append(raw, c.sealed...)
	raw = append(raw, c.iv[:]...)
	raw = append(raw, c.nonce[:]...)
	return raw, c.alg, true
}

// legacyCiphertext is the decoded content of a MessagePack or JSON
// ciphertext. The key id is parsed for validation but not kept: KES since
// 2024 ignores it.
type legacyCiphertext struct {
	alg    KeyType
	iv     [ivSize]byte
	nonce  [nonceSize]byte
	sealed []byte
}

// parseMsgp decodes a fixarray(5): str algorithm, str key id, bin iv (16),
// bin nonce (12), bin sealed, with no trailing bytes. It reports success.
func (c *legacyCiphertext) parseMsgp(b []byte) bool {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 5 {
		return false
	}
	algorithm, b, err := msgp.ReadStringZC(b)
	if err != nil {
		return false
	}
	if _, b, err = msgp.ReadStringZC(b); err != nil { // key id, ignored
		return false
	}
	if b, err = msgp.ReadExactBytes(b, c.iv[:]); err != nil {
		return false
	}
	if b, err = msgp.ReadExactBytes(b, c.nonce[:]); err != nil {
		return false
	}
	sealed, b, err := msgp.ReadBytesZC(b)
	if err != nil || len(b) != 0 {
		return false
	}
	alg, err := ParseKeyType(string(algorithm))
	if err != nil {
		return false
	}
	c.alg, c.sealed = alg, sealed
	return true
}

// parseJSON decodes {"aead","id","iv","nonce","bytes"} where iv, nonce and
// bytes are standard base64, aead is one of the two legacy names, iv is 16
// and nonce 12 bytes. It reports success.
func (c *legacyCiphertext) parseJSON(b []byte) bool {
	var v struct {
		AEAD  string `json:"aead"`
		ID    string `json:"id"`
		IV    []byte `json:"iv"`
		Nonce []byte `json:"nonce"`
		Bytes []byte `json:"bytes"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return false
	}
	switch v.AEAD {
	case jsonAEADAES256:
		c.alg = AES256
	case jsonAEADChaCha20:
		c.alg = ChaCha20
	default:
		return false
	}
	if len(v.IV) != ivSize || len(v.Nonce) != nonceSize {
		return false
	}
	copy(c.iv[:], v.IV)
	copy(c.nonce[:], v.Nonce)
	c.sealed = v.Bytes
	return true
}
