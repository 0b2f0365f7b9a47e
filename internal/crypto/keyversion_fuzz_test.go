package crypto

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseKeyVersion feeds arbitrary stored key records (keystore
// entries) to ParseKeyVersion: it must never panic, and a record it accepts
// must encode, parse back to the same key and encrypt/decrypt.
func FuzzParseKeyVersion(f *testing.F) {
	for _, typ := range allTypes {
		kv, err := NewKeyVersion(typ, "fuzz", time.Unix(1700000000, 0))
		if err != nil {
			f.Fatal(err)
		}
		b, err := EncodeKeyVersion(kv)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"bytes":"AAAA","algorithm":"AES256-GCM_SHA256"}`))
	f.Add([]byte(`{"key":"` + string(bytes.Repeat([]byte("A"), 43)) + `=","algorithm":"ChaCha20-Poly1305"}`))
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, err := ParseKeyVersion(b)
		if err != nil {
			return
		}
		enc, err := EncodeKeyVersion(kv)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", b, err)
		}
		kv2, err := ParseKeyVersion(enc)
		if err != nil {
			t.Fatalf("cannot parse own encoding %q of %q: %v", enc, b, err)
		}
		if kv2.Key.Type != kv.Key.Type || kv2.Key.Key != kv.Key.Key {
			t.Fatalf("round trip of %q changed the key", b)
		}
		ct, err := kv.Encrypt([]byte("plaintext"), []byte("ad"))
		if err != nil {
			return // e.g. a record for an HMAC-only or unusable key
		}
		if pt, err := kv.Decrypt(ct, []byte("ad")); err != nil || string(pt) != "plaintext" {
			t.Fatalf("key from %q: decrypt(encrypt) = %q, %v", b, pt, err)
		}
	})
}
