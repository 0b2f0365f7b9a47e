package crypto

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func newVersions(t *testing.T, n int) *Versions {
	t.Helper()
	v := &Versions{}
	for range n {
		kv, err := NewKeyVersion(AES256, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		v.List = append(v.List, kv)
	}
	return v
}

// TestVersionsKeepKESFormatsForVersionOne: every KES test vector decrypts
// through a key with three versions whose first is the vector's key, and
// a one-version key encrypts in KES's raw format (its version-1 key alone
// decrypts it, as KES would).
func TestVersionsKeepKESFormatsForVersionOne(t *testing.T) {
	vectors, _ := loadCipherVectors(t)
	for _, vec := range vectors {
		if vec.Fail {
			continue
		}
		v := newVersions(t, 3)
		v.List[0] = KeyVersion{Key: secretKey(t, vec.KeyType, vec.Key)}
		pt, n, err := v.Decrypt(vec.ciphertext(t), b64(t, vec.Context))
		if err != nil || n != 1 || !bytes.Equal(pt, b64(t, vec.Plaintext)) {
			t.Fatalf("%s: version %d, %v", vec.Name, n, err)
		}
	}
	one := newVersions(t, 1)
	ct, n, err := one.Encrypt([]byte("data key"), []byte("ctx"))
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if pt, err := one.List[0].Decrypt(ct, []byte("ctx")); err != nil || string(pt) != "data key" {
		t.Fatalf("a version-1 ciphertext is not KES's raw format: %v", err)
	}
	if len(ct) != len("data key")+44 {
		t.Fatalf("a version-1 ciphertext has %d bytes, KES's raw format plaintext+44", len(ct))
	}
}

// TestVersionedCiphertexts: newer versions carry an authenticated header;
// KES (the version-1 key) rejects them with its decrypt error; a forged
// header or context fails; retired versions fail with ErrVersionRetired.
func TestVersionedCiphertexts(t *testing.T) {
	v := newVersions(t, 3)
	ad := []byte("bucket/object")
	ct3, n, err := v.Encrypt([]byte("secret"), ad)
	if err != nil || n != 3 || CiphertextVersion(ct3) != 3 || string(ct3[:3]) != "KRV" {
		t.Fatalf("newest ciphertext: version %d, header %q, %v", n, ct3[:VersionHeaderLen], err)
	}
	ct1, _, err := v.EncryptWith(1, []byte("old"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if pt, n, err := v.Decrypt(ct3, ad); err != nil || n != 3 || string(pt) != "secret" {
		t.Fatalf("decrypt v3: %q %d %v", pt, n, err)
	}
	if pt, n, err := v.Decrypt(ct1, ad); err != nil || n != 1 || string(pt) != "old" {
		t.Fatalf("decrypt v1: %q %d %v", pt, n, err)
	}
	// KES holds only version 1: the v3 ciphertext is not authentic to it.
	if _, err := v.List[0].Decrypt(ct3, ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("KES's view of a v3 ciphertext: %v, want ErrDecrypt", err)
	}
	forged := bytes.Clone(ct3)
	forged[VersionHeaderLen-1] = 2 // claims version 2
	if _, _, err := v.Decrypt(forged, ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged version: %v, want ErrDecrypt", err)
	}
	// The header is part of the associated data: the v3 payload under a
	// plain raw reading with v3's key fails too.
	if _, err := v.List[2].Decrypt(ct3[VersionHeaderLen:], ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("v3 payload without its header: %v, want ErrDecrypt", err)
	}
	if _, _, err := v.Decrypt(ct3, []byte("other")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong context: %v", err)
	}
	short := &Versions{List: v.List[:2]}
	if _, _, err := short.Decrypt(ct3, ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a version the key does not have: %v", err)
	}
	v.Min = 2
	if pt, n, err := v.Decrypt(ct1, ad); !errors.Is(err, ErrVersionRetired) || pt != nil || n != 1 {
		t.Fatalf("retired v1: %q %d %v", pt, n, err)
	}
	if _, _, err := v.Decrypt(ct3, ad); err != nil {
		t.Fatalf("v3 after retiring v1: %v", err)
	}
	// Version 2's material destroyed (after its retirement): its
	// ciphertexts say so; the other versions are untouched.
	ct2, _, _ := v.EncryptWith(2, []byte("two"), ad)
	v.Min = 3
	v.List[1] = KeyVersion{}
	if _, n, err := v.Decrypt(ct2, ad); !errors.Is(err, ErrVersionRetired) || n != 2 {
		t.Fatalf("a destroyed version: %d %v", n, err)
	}
	if _, _, err := v.EncryptWith(2, []byte("x"), ad); err == nil {
		t.Fatal("encrypted with a destroyed version")
	}
	if pt, _, err := v.Decrypt(ct3, ad); err != nil || string(pt) != "secret" {
		t.Fatalf("v3 after destroying v2: %v", err)
	}
}

// BenchmarkVersionsDecrypt: decrypting with a key of 100 versions costs
// what it costs with one.
func BenchmarkVersionsDecrypt(b *testing.B) {
	for _, n := range []int{1, 100} {
		v := &Versions{}
		for range n {
			kv, _ := NewKeyVersion(AES256, "bench", time.Now())
			v.List = append(v.List, kv)
		}
		ct, _, _ := v.Encrypt(make([]byte, 32), []byte("ctx"))
		b.Run(map[int]string{1: "versions=1", 100: "versions=100"}[n], func(b *testing.B) {
			for b.Loop() {
				if _, _, err := v.Decrypt(ct, []byte("ctx")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
