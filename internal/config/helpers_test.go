package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// certOpts controls genCert.
type certOpts struct {
	noSAN    bool   // omit DNS and IP SANs
	password string // encrypt the key as a legacy PEM block
}

// genCert writes a self-signed ECDSA certificate <dir>/<name>.cert and its
// key <dir>/<name>.key and returns their paths and the parsed certificate.
func genCert(t *testing.T, dir, name string, o certOpts) (certPath, keyPath string, cert *x509.Certificate) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if !o.noSAN {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block := &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}
	if o.password != "" {
		//lint:ignore SA1019 the test produces the legacy encrypted PEM keys KES writes.
		block, err = x509.EncryptPEMBlock(rand.Reader, block.Type, keyDER, []byte(o.password), x509.PEMCipherAES256)
		if err != nil {
			t.Fatal(err)
		}
	}
	certPath = filepath.Join(dir, name+".cert")
	keyPath = filepath.Join(dir, name+".key")
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(block)))
	return certPath, keyPath, cert
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// unsetenv removes name from the environment for the duration of the test.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // registers restoration of the previous value
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// mustParse parses data and fails the test on error.
func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// wantErr asserts that err's message is exactly want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	if err.Error() != want {
		t.Fatalf("got error %q\nwant       %q", err.Error(), want)
	}
}

const (
	hexA = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
	hexB = "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"
)

// minimal is the smallest valid config Parse accepts (no file checks).
const minimal = `
admin:
  identity: disabled
tls:
  key: server.key
  cert: server.cert
keystore:
  fs:
    path: /tmp/keys
`
