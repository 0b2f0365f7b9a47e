package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tinylib/msgp/msgp"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/encoding/protowire"
)

var allTypes = []KeyType{AES256, ChaCha20}

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in   string
		want KeyType
		ok   bool
	}{
		{"AES256", AES256, true},
		{"AES256-GCM_SHA256", AES256, true},
		{"ChaCha20", ChaCha20, true},
		{"XCHACHA20-POLY1305", ChaCha20, true},
		{"", 0, false},
		{"aes256", 0, false},
		{"AES-256-GCM-HMAC-SHA-256", 0, false},
		{"chacha20", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseKeyType(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseKeyType(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("ParseKeyType(%q) err = %v, want ErrUnsupportedAlgorithm", tt.in, err)
		}
	}
	if AES256.String() != "AES256" || ChaCha20.String() != "ChaCha20" || KeyType(7).String() != "!INVALID:7" {
		t.Errorf("String: %q %q %q", AES256, ChaCha20, KeyType(7))
	}
	if d := DefaultKeyType(); d != AES256 && d != ChaCha20 {
		t.Errorf("DefaultKeyType() = %v", d)
	}
}

func TestKeyID(t *testing.T) {
	// The legacy vectors carry this id for the all-zero key.
	if got := KeyID([KeySize]byte{}); got != "66687aadf862bd776c8fc18b8e9f8e20" {
		t.Fatalf("KeyID(zero) = %s", got)
	}
}

func TestEncryptNonDeterministic(t *testing.T) {
	for _, typ := range allTypes {
		k, err := GenerateSecretKey(typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		pt := []byte("same plaintext")
		a, errA := k.Encrypt(pt, nil)
		b, errB := k.Encrypt(pt, nil)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if bytes.Equal(a, b) || bytes.Equal(a[len(a)-randSize:], b[len(b)-randSize:]) {
			t.Errorf("%v: two encryptions are identical", typ)
		}
		// nil and empty associated data are the same context.
		if got, err := k.Decrypt(a, []byte{}); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%v: decrypt with empty AD: %v", typ, err)
		}
	}
}

func TestTamperingFails(t *testing.T) {
	for _, typ := range allTypes {
		k, err := GenerateSecretKey(typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		ad := []byte("context")
		ct, err := k.Encrypt(make([]byte, 32), ad)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ct {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x01
			if _, err := k.Decrypt(bad, ad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%v: flipping byte %d: err = %v, want ErrDecrypt", typ, i, err)
			}
		}
		for _, n := range []int{0, 1, randSize, randSize + 1, len(ct) - 1} {
			if _, err := k.Decrypt(ct[:n], ad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("%v: truncated to %d: err = %v, want ErrDecrypt", typ, n, err)
			}
		}
		if _, err := k.Decrypt(append(bytes.Clone(ct), 0), ad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%v: extended: err = %v, want ErrDecrypt", typ, err)
		}
	}
}

// TestIndependentConstruction opens our ciphertexts with a construction
// written separately from the package code, and vice versa.
func TestIndependentConstruction(t *testing.T) {
	k, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, ad := []byte("data encryption key............."), []byte("ctx")
	ct, err := k.Encrypt(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	sealed, iv, nonce := ct[:len(ct)-28], ct[len(ct)-28:len(ct)-12], ct[len(ct)-12:]
	mac := hmac.New(sha256.New, k.Key[:])
	mac.Write(iv)
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := gcm.Open(nil, nonce, sealed, ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("manual AES-256-GCM open: %v", err)
	}

	// ChaCha20: with a nonce whose first 4 bytes are zero, our construction
	// equals standard XChaCha20-Poly1305 with the 24-byte nonce
	// iv || nonce[4:]. Seal with the x/crypto implementation, open with ours.
	c, err := GenerateSecretKey(ChaCha20, nil)
	if err != nil {
		t.Fatal(err)
	}
	xnonce := bytes.Repeat([]byte{0xa5}, chacha20poly1305.NonceSizeX)
	x, err := chacha20poly1305.NewX(c.Key[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := x.Seal(nil, xnonce, pt, ad)
	raw = append(raw, xnonce[:16]...)
	raw = append(raw, 0, 0, 0, 0)
	raw = append(raw, xnonce[16:]...)
	if got, err := c.Decrypt(raw, ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open XChaCha20-Poly1305 ciphertext: %v", err)
	}
}

// appendMsgp encodes a raw ciphertext in the 2022-2024 MessagePack form.
func appendMsgp(raw []byte, alg, id string) []byte {
	n := len(raw)
	b := msgp.AppendArrayHeader(nil, 5)
	b = msgp.AppendString(b, alg)
	b = msgp.AppendString(b, id)
	b = msgp.AppendBytes(b, raw[n-28:n-12])
	b = msgp.AppendBytes(b, raw[n-12:])
	return msgp.AppendBytes(b, raw[:n-28])
}

// jsonCiphertext encodes a raw ciphertext in the pre-2022 JSON form.
func jsonCiphertext(raw []byte, aead string) []byte {
	n, enc := len(raw), base64.StdEncoding.EncodeToString
	return []byte(`{"aead":"` + aead + `","iv":"` + enc(raw[n-28:n-12]) + `","nonce":"` +
		enc(raw[n-12:]) + `","bytes":"` + enc(raw[:n-28]) + `"}`)
}

func TestLegacyFormats(t *testing.T) {
	k, err := GenerateSecretKey(ChaCha20, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("plaintext")
	raw, err := k.Encrypt(pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := KeyID(k.Key)
	tests := []struct {
		name string
		ct   []byte
		ok   bool
	}{
		{"msgp", appendMsgp(raw, "XCHACHA20-POLY1305", id), true},
		{"msgp new spelling", appendMsgp(raw, "ChaCha20", ""), true},
		{"msgp recorded algorithm ignored", appendMsgp(raw, "AES256-GCM_SHA256", id), true},
		{"msgp foreign key id ignored", appendMsgp(raw, "ChaCha20", "00000000000000000000000000000000"), true},
		{"msgp trailing byte", append(appendMsgp(raw, "ChaCha20", id), 0), false},
		{"msgp unknown algorithm", appendMsgp(raw, "AES-256-GCM", id), false},
		{"msgp wrong iv size", appendMsgp(append(raw[:len(raw)-28:len(raw)-28], raw[len(raw)-29:]...), "ChaCha20", id), false},
		{"json", jsonCiphertext(raw, "ChaCha20Poly1305"), true},
		{"json recorded algorithm ignored", jsonCiphertext(raw, "AES-256-GCM-HMAC-SHA-256"), true},
		{"json msgp algorithm name", jsonCiphertext(raw, "XCHACHA20-POLY1305"), false},
	}
	for _, tt := range tests {
		got, err := k.Decrypt(tt.ct, nil)
		if tt.ok && (err != nil || !bytes.Equal(got, pt)) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", tt.name, err)
		}
	}
}

// TestAlgorithmlessKeyHonoursCiphertext covers spec §5.3 "Compatibility
// hazard": a legacy key without algorithm is AES256, but a legacy ChaCha20
// ciphertext made under it must still decrypt via KeyVersion.Decrypt.
func TestAlgorithmlessKeyHonoursCiphertext(t *testing.T) {
	decrypt, _ := loadCipherVectors(t)
	vectors := map[string]cipherVector{}
	for _, v := range decrypt {
		vectors[v.Name] = v
	}
	kv, err := ParseKeyVersion([]byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	if err != nil {
		t.Fatal(err)
	}
	if !kv.NoAlgorithm || kv.Key.Type != AES256 || kv.HMAC != nil {
		t.Fatalf("parsed %+v, want AES256 without algorithm and HMAC", kv)
	}
	for _, name := range []string{"json-chacha20", "json-chacha20-with-id", "msgp-chacha20", "json-aes256", "msgp-aes256", "raw-aes256"} {
		v := vectors[name]
		got, err := kv.Decrypt(v.ciphertext(t), nil)
		if err != nil || !bytes.Equal(got, b64(t, v.Plaintext)) {
			t.Errorf("%s: KeyVersion.Decrypt: %v", name, err)
		}
	}
	// HEAD semantics on the bare secret key: the key's type (AES256) wins.
	if _, err := kv.Key.Decrypt(vectors["json-chacha20"].ciphertext(t), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("SecretKey.Decrypt of ChaCha20 JSON under AES256 key: err = %v", err)
	}
	// A key with a recorded algorithm does not switch.
	kv.NoAlgorithm = false
	if _, err := kv.Decrypt(vectors["json-chacha20"].ciphertext(t), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("KeyVersion with algorithm decrypted a ChaCha20 ciphertext: err = %v", err)
	}
}

func TestKeyVersionRoundTrip(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 30, 0, 123456789, time.FixedZone("x", 3600))
	for _, typ := range allTypes {
		kv, err := NewKeyVersion(typ, "3ecfcdf38fcb", now)
		if err != nil {
			t.Fatal(err)
		}
		if kv.HMAC == nil || kv.Key.Type != typ || kv.NoAlgorithm || !kv.CreatedAt.Equal(now) {
			t.Fatalf("NewKeyVersion = %+v", kv)
		}
		enc, err := EncodeKeyVersion(kv)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseKeyVersion(append(append([]byte(" \n"), enc...), "\r\n"...))
		if err != nil {
			t.Fatal(err)
		}
		assertKeyVersion(t, got, kv)
		ct, err := kv.Encrypt([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := got.Decrypt(ct, nil); err != nil || string(p) != "x" {
			t.Fatalf("decrypt after round trip: %v", err)
		}
		if !bytes.Equal(kv.HMAC.Sum([]byte("m")), got.HMAC.Sum([]byte("m"))) {
			t.Fatal("HMAC differs after round trip")
		}
	}
	// Zero time and empty creator survive too.
	kv, err := NewKeyVersion(AES256, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeKeyVersion(kv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeyVersion(enc)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyVersion(t, got, kv)
}

// pbMessage builds a protobuf KeyVersion with optional sub-keys.
func pbMessage(key, mac []byte, keyType, hash uint64) []byte {
	sub := func(b []byte, kind uint64) []byte {
		var m []byte
		if b != nil {
			m = protowire.AppendTag(m, 1, protowire.BytesType)
			m = protowire.AppendBytes(m, b)
		}
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		return protowire.AppendVarint(m, kind)
	}
	var out []byte
	if key != nil || keyType != 0 {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, sub(key, keyType))
	}
	if mac != nil || hash != 0 {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendBytes(out, sub(mac, hash))
	}
	out = protowire.AppendTag(out, 4, protowire.BytesType)
	out = protowire.AppendString(out, "someone")
	out = protowire.AppendTag(out, 99, protowire.VarintType) // unknown field: skipped
	out = protowire.AppendVarint(out, 7)
	return []byte(base64.StdEncoding.EncodeToString(out))
}

func TestParseKeyVersionProtobufErrors(t *testing.T) {
	k32, k16 := make([]byte, 32), make([]byte, 16)
	if _, err := ParseKeyVersion(pbMessage(k32, k32, 2, 1)); err != nil {
		t.Fatalf("valid message: %v", err)
	}
	tests := []struct {
		name  string
		in    []byte
		cause error
	}{
		{"missing secret key", pbMessage(nil, k32, 0, 1), ErrUnsupportedAlgorithm},
		{"missing HMAC key", pbMessage(k32, nil, 1, 0), ErrUnsupportedAlgorithm},
		{"secret key without bytes", pbMessage(nil, k32, 1, 1), ErrInvalidKeySize},
		{"HMAC key without bytes", pbMessage(k32, nil, 1, 1), ErrInvalidKeySize},
		{"short secret key", pbMessage(k16, k32, 1, 1), ErrInvalidKeySize},
		{"short HMAC key", pbMessage(k32, k16, 1, 1), ErrInvalidKeySize},
		{"unknown key type", pbMessage(k32, k32, 3, 1), ErrUnsupportedAlgorithm},
		{"key type overflowing uint8", pbMessage(k32, k32, 257, 1), ErrUnsupportedAlgorithm},
		{"unknown hash", pbMessage(k32, k32, 1, 2), ErrUnsupportedAlgorithm},
		{"truncated", []byte(base64.StdEncoding.EncodeToString([]byte{0x0a, 0x24, 0x0a})), nil},
		{"not base64", []byte("!!not base64!!"), nil},
		{"secret key as varint", []byte(base64.StdEncoding.EncodeToString([]byte{0x08, 0x01})), nil},
		{"key bytes as varint", []byte(base64.StdEncoding.EncodeToString([]byte{0x0a, 0x02, 0x08, 0x01})), nil},
		{"invalid UTF-8 creator", []byte(base64.StdEncoding.EncodeToString([]byte{0x22, 0x01, 0xff})), nil},
	}
	for _, tt := range tests {
		_, err := ParseKeyVersion(tt.in)
		if !errors.Is(err, ErrInvalidKeyVersion) {
			t.Errorf("%s: err = %v, want ErrInvalidKeyVersion", tt.name, err)
		}
		if tt.cause != nil && !errors.Is(err, tt.cause) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.cause)
		}
	}
}

func TestParseLegacyKeyVersionErrors(t *testing.T) {
	tests := []struct {
		in    string
		cause error
	}{
		{`{"bytes":"AAAAAAAAAAAAAAAAAAAAAA=="}`, ErrInvalidKeySize},
		{`{}`, ErrInvalidKeySize},
		{`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES-128"}`, ErrUnsupportedAlgorithm},
		{`{"bytes":"not base64"}`, nil},
		{`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","created_at":"yesterday"}`, nil},
		{`[]`, nil},
	}
	for _, tt := range tests {
		_, err := ParseKeyVersion([]byte(tt.in))
		if !errors.Is(err, ErrInvalidKeyVersion) || (tt.cause != nil && !errors.Is(err, tt.cause)) {
			t.Errorf("%s: err = %v, want ErrInvalidKeyVersion/%v", tt.in, err, tt.cause)
		}
	}
	// Extra fields (the 2023 "version") are ignored; new spellings accepted.
	kv, err := ParseKeyVersion([]byte(`{"version":"v1","bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"ChaCha20"}`))
	if err != nil || kv.Key.Type != ChaCha20 || kv.NoAlgorithm || kv.HMAC != nil {
		t.Fatalf("ParseKeyVersion = %+v, %v", kv, err)
	}
}

func TestImportKeyVersion(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	now := time.Now()
	kv, err := ImportKeyVersion(key, "XCHACHA20-POLY1305", "me", now)
	if err != nil {
		t.Fatal(err)
	}
	if kv.Key.Type != ChaCha20 || !bytes.Equal(kv.Key.Key[:], key) || kv.HMAC == nil || kv.CreatedBy != "me" {
		t.Fatalf("ImportKeyVersion = %+v", kv)
	}
	if kv.HMAC.Key == kv.Key.Key || kv.HMAC.Key == [KeySize]byte{} {
		t.Fatal("HMAC key is not freshly random")
	}
	for _, cipher := range []string{"", "AES128", "aes256"} {
		if _, err := ImportKeyVersion(key, cipher, "", now); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("cipher %q: err = %v, want ErrUnsupportedAlgorithm", cipher, err)
		}
	}
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := ImportKeyVersion(make([]byte, n), "AES256", "", now); !errors.Is(err, ErrInvalidKeySize) {
			t.Errorf("%d bytes: err = %v, want ErrInvalidKeySize", n, err)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	failing := iotest.ErrReader(errors.New("no entropy"))
	if _, err := GenerateSecretKey(AES256, failing); err == nil || !strings.Contains(err.Error(), "no entropy") {
		t.Errorf("GenerateSecretKey with failing reader: %v", err)
	}
	if _, err := GenerateHMACKey(failing); err == nil {
		t.Error("GenerateHMACKey with failing reader succeeded")
	}
	if _, err := GenerateSecretKey(0, nil); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("GenerateSecretKey(0): %v", err)
	}
	if _, err := NewKeyVersion(9, "", time.Now()); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("NewKeyVersion(9): %v", err)
	}
	if _, err := EncodeKeyVersion(KeyVersion{Key: SecretKey{Type: AES256}, HMAC: &HMACKey{}, CreatedBy: "\xff"}); !errors.Is(err, ErrInvalidKeyVersion) {
		t.Errorf("EncodeKeyVersion with invalid UTF-8: %v", err)
	}
}

func TestHMAC(t *testing.T) {
	// RFC 4231 test case 2 is for a 4-byte key; use a 32-byte key and an
	// independent computation instead.
	h := HMACKey{Key: [KeySize]byte(bytes.Repeat([]byte{0x0b}, 32))}
	mac := hmac.New(sha256.New, h.Key[:])
	mac.Write([]byte("Hi There"))
	want := mac.Sum(nil)
	got := h.Sum([]byte("Hi There"))
	if len(got) != 32 || !h.Equal(got, want) {
		t.Fatalf("Sum = %x, want %x", got, want)
	}
	if h.Equal(got, h.Sum([]byte("Hi there"))) {
		t.Fatal("different messages have equal MACs")
	}
}

func TestZero(t *testing.T) {
	kv, err := NewKeyVersion(AES256, "me", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clone := kv.Clone()
	shared := kv.HMAC
	kv.Zero()
	if kv.Key != (SecretKey{}) || kv.HMAC != nil || *shared != (HMACKey{}) {
		t.Fatalf("Zero left key material: %+v %+v", kv, *shared)
	}
	if clone.HMAC.Key == [KeySize]byte{} || clone.Key.Key == [KeySize]byte{} {
		t.Fatal("Zero affected a Clone")
	}
	if _, err := kv.Encrypt([]byte("x"), nil); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("Encrypt with zeroed key: err = %v", err)
	}
	if _, err := kv.Decrypt(make([]byte, 64), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt with zeroed key: err = %v", err)
	}
	var empty KeyVersion
	empty.Zero() // must not panic on a nil HMAC
}

func FuzzDecrypt(f *testing.F) {
	f.Add([]byte{0x95, 0xa1})
	f.Add([]byte(`{"aead":"ChaCha20Poly1305"}`))
	f.Add(make([]byte, 60))
	k := SecretKey{Type: ChaCha20}
	f.Fuzz(func(t *testing.T, ct []byte) {
		for _, typ := range allTypes {
			k.Type = typ
			if _, err := k.Decrypt(ct, nil); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("random input: err = %v, want ErrDecrypt", err)
			}
			if _, err := (KeyVersion{Key: k, NoAlgorithm: true}).Decrypt(ct, nil); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("random input: err = %v, want ErrDecrypt", err)
			}
		}
	})
}
