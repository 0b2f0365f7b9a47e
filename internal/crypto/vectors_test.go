package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// cipherVector is one entry of testdata/ciphertexts.json.
type cipherVector struct {
	Name           string `json:"name"`
	KeyType        string `json:"key_type"`
	Key            string `json:"key"`
	Plaintext      string `json:"plaintext"`
	Context        string `json:"context"`
	Format         string `json:"format"`
	CiphertextText string `json:"ciphertext_text"`
	CiphertextB64  string `json:"ciphertext_b64"`
	Fail           bool   `json:"fail"`
}

// keyVector is one entry of testdata/keys.json.
type keyVector struct {
	Name        string  `json:"name"`
	Stored      string  `json:"stored"`
	KeyType     string  `json:"key_type"`
	Key         string  `json:"key"`
	HMACKey     *string `json:"hmac_key"`
	CreatedAt   string  `json:"created_at"`
	CreatedBy   string  `json:"created_by"`
	NoAlgorithm bool    `json:"no_algorithm"`
	Fail        bool    `json:"fail"`
}

func loadJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func loadCipherVectors(t testing.TB) (decrypt, encrypt []cipherVector) {
	var f struct {
		Decrypt []cipherVector `json:"decrypt"`
		Encrypt []cipherVector `json:"encrypt"`
	}
	loadJSON(t, "ciphertexts.json", &f)
	if len(f.Decrypt) == 0 || len(f.Encrypt) == 0 {
		t.Fatal("ciphertexts.json: no vectors")
	}
	return f.Decrypt, f.Encrypt
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func secretKey(t testing.TB, typ, key string) SecretKey {
	t.Helper()
	kt, err := ParseKeyType(typ)
	if err != nil {
		t.Fatal(err)
	}
	raw := b64(t, key)
	if len(raw) != KeySize {
		t.Fatalf("key %q has %d bytes", key, len(raw))
	}
	return SecretKey{Type: kt, Key: [KeySize]byte(raw)}
}

func (v cipherVector) ciphertext(t testing.TB) []byte {
	if v.CiphertextText != "" {
		return []byte(v.CiphertextText)
	}
	return b64(t, v.CiphertextB64)
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

func TestDecryptVectors(t *testing.T) {
	vectors, _ := loadCipherVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			key := secretKey(t, v.KeyType, v.Key)
			ct := v.ciphertext(t)
			orig := bytes.Clone(ct)
			ad := b64(t, v.Context)

			check := func(name string, got []byte, err error) {
				t.Helper()
				if v.Fail {
					if !errors.Is(err, ErrDecrypt) {
						t.Fatalf("%s: err = %v, want ErrDecrypt", name, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if want := b64(t, v.Plaintext); !bytes.Equal(got, want) {
					t.Fatalf("%s: plaintext %x, want %x", name, got, want)
				}
			}
			got, err := key.Decrypt(ct, ad)
			check("SecretKey.Decrypt", got, err)
			got, err = KeyVersion{Key: key}.Decrypt(ct, ad)
			check("KeyVersion.Decrypt", got, err)
			if !bytes.Equal(ct, orig) {
				t.Fatal("Decrypt modified its input")
			}

			if v.Fail {
				return
			}
			// The same ciphertext must not open with the other cipher, a
			// different context, or a different key.
			other := key
			other.Type = 3 - key.Type
			if _, err := other.Decrypt(ct, ad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("decrypt with %v: err = %v, want ErrDecrypt", other.Type, err)
			}
			if _, err := key.Decrypt(ct, append(bytes.Clone(ad), 0)); !errors.Is(err, ErrDecrypt) {
				t.Errorf("decrypt with other context: err = %v, want ErrDecrypt", err)
			}
			other = key
			other.Key[31] ^= 1
			if _, err := other.Decrypt(ct, ad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("decrypt with other key: err = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestEncryptVectors(t *testing.T) {
	_, vectors := loadCipherVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			key := secretKey(t, v.KeyType, v.Key)
			pt, ad := b64(t, v.Plaintext), b64(t, v.Context)
			ct, err := key.Encrypt(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(ct) != len(pt)+Overhead {
				t.Fatalf("len(ciphertext) = %d, want %d", len(ct), len(pt)+Overhead)
			}
			got, err := key.Decrypt(ct, ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("round trip: got %x, want %x", got, pt)
			}
		})
	}
}

func loadKeyVectors(t testing.TB) (parse, encode []keyVector) {
	var f struct {
		Parse  []keyVector `json:"parse"`
		Encode []keyVector `json:"encode"`
	}
	loadJSON(t, "keys.json", &f)
	if len(f.Parse) == 0 || len(f.Encode) == 0 {
		t.Fatal("keys.json: no vectors")
	}
	return f.Parse, f.Encode
}

// want builds the KeyVersion a key vector describes.
func (v keyVector) want(t testing.TB) KeyVersion {
	t.Helper()
	kv := KeyVersion{CreatedAt: mustTime(t, v.CreatedAt), CreatedBy: v.CreatedBy, NoAlgorithm: v.NoAlgorithm}
	if v.KeyType != "" {
		kv.Key = secretKey(t, v.KeyType, v.Key)
	}
	if v.HMACKey != nil {
		kv.HMAC = &HMACKey{Key: [KeySize]byte(b64(t, *v.HMACKey))}
	}
	return kv
}

func assertKeyVersion(t *testing.T, got, want KeyVersion) {
	t.Helper()
	if got.Key != want.Key {
		t.Errorf("Key = %v/%x, want %v/%x", got.Key.Type, got.Key.Key, want.Key.Type, want.Key.Key)
	}
	switch {
	case (got.HMAC == nil) != (want.HMAC == nil):
		t.Errorf("HMAC = %v, want %v", got.HMAC != nil, want.HMAC != nil)
	case got.HMAC != nil && *got.HMAC != *want.HMAC:
		t.Errorf("HMAC key = %x, want %x", got.HMAC.Key, want.HMAC.Key)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v (UTC)", got.CreatedAt, want.CreatedAt)
	}
	if got.CreatedBy != want.CreatedBy {
		t.Errorf("CreatedBy = %q, want %q", got.CreatedBy, want.CreatedBy)
	}
	if got.NoAlgorithm != want.NoAlgorithm {
		t.Errorf("NoAlgorithm = %v, want %v", got.NoAlgorithm, want.NoAlgorithm)
	}
}

func TestParseKeyVersionVectors(t *testing.T) {
	vectors, _ := loadKeyVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			got, err := ParseKeyVersion([]byte(v.Stored))
			if v.Fail {
				if !errors.Is(err, ErrInvalidKeyVersion) {
					t.Fatalf("err = %v, want ErrInvalidKeyVersion", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertKeyVersion(t, got, v.want(t))

			if got.HMAC == nil {
				return
			}
			// A protobuf entry re-encodes to exactly the stored bytes, so
			// KES reads what we write.
			enc, err := EncodeKeyVersion(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(enc) != v.Stored {
				t.Fatalf("re-encoded:\n%s\nwant\n%s", enc, v.Stored)
			}
		})
	}
}

func TestEncodeKeyVersionVectors(t *testing.T) {
	_, vectors := loadKeyVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			kv := v.want(t)
			enc, err := EncodeKeyVersion(kv)
			if v.Fail {
				if !errors.Is(err, ErrInvalidKeyVersion) {
					t.Fatalf("err = %v, want ErrInvalidKeyVersion", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseKeyVersion(enc)
			if err != nil {
				t.Fatal(err)
			}
			assertKeyVersion(t, got, kv)
		})
	}
}
