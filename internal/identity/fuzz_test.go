package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"
)

// FuzzParseAPIKey: ParseAPIKey never panics, and a key it accepts prints
// back to a string that parses to the same key and identity.
func FuzzParseAPIKey(f *testing.F) {
	k, err := GenerateAPIKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.String())
	f.Add("kes:v1:")
	f.Add("kes:v1:AAAA")
	f.Add("kes:v2:" + k.String()[7:])
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseAPIKey(s)
		if err != nil {
			return
		}
		k2, err := ParseAPIKey(k.String())
		if err != nil || !k2.Equal(k) || k2.Identity() != k.Identity() {
			t.Fatalf("%q: round trip via %q failed: %v", s, k.String(), err)
		}
		if _, err := k.Certificate(); err != nil {
			t.Fatalf("%q: accepted key has no certificate: %v", s, err)
		}
	})
}

// FuzzCertificateIdentity: PEM certificates from outside (tls.cert, CA
// files, proxy headers) parse or fail without panicking, and every parsed
// certificate has a 64-hex-digit identity.
func FuzzCertificateIdentity(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, der, err := SelfSigned(key, CertOptions{Subject: "fuzz", DNSNames: []string{"localhost"}, Expiry: time.Hour, ServerAuth: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(EncodeCertificatePEM(der))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, err := ParseCertificatePEM(data)
		if err != nil {
			return
		}
		id := Of(cert)
		if b, err := hex.DecodeString(id); err != nil || len(b) != 32 {
			t.Fatalf("identity %q of an accepted certificate", id)
		}
		_, _ = ParsePrivateKeyPEM(data)
	})
}
