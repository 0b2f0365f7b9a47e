package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AuthMode returns the client-certificate policy for tls.auth as KES does:
// ""/"off" → tls.RequireAnyClientCert (certificate required, chain not
// verified), "on" → tls.RequireAndVerifyClientCert. If skipAuth is true (some
// api.<path>.skip_auth is set) certificates become optional:
// RequestClientCert and VerifyClientCertIfGiven respectively. Unknown values
// (rejected by Validate) are treated as "off".
func (t TLS) AuthMode(skipAuth bool) tls.ClientAuthType {
	verify := t.Auth == "on"
	switch {
	case verify && skipAuth:
		return tls.VerifyClientCertIfGiven
	case verify:
		return tls.RequireAndVerifyClientCert
	case skipAuth:
		return tls.RequestClientCert
	default:
		return tls.RequireAnyClientCert
	}
}

// ClientAuth is c.TLS.AuthMode(s) where s reports whether any API route has
// skip_auth set.
func (c *Config) ClientAuth() tls.ClientAuthType {
	skip := false
	for _, a := range c.API {
		skip = skip || a.SkipAuth
	}
	return c.TLS.AuthMode(skip)
}

// LoadCertificate reads the server certificate chain and private key. A
// legacy encrypted PEM key ("Proc-Type: 4,ENCRYPTED", as written by
// `kes identity new --encrypt`) is decrypted with t.Password. Decrypted key
// bytes are zeroed after parsing. The leaf must carry at least one DNS or IP
// subject alternative name, as KES requires.
//
// Errors: *FieldError for tls.cert / tls.key wrapping the os error,
// ErrPasswordRequired, x509.IncorrectPasswordError or a parse error; a
// *FieldError for tls wrapping the tls.X509KeyPair error; ErrNoSAN.
func (t TLS) LoadCertificate() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(t.Cert)
	if err != nil {
		return tls.Certificate{}, fieldErr("tls.cert", 0, err)
	}
	keyPEM, err := os.ReadFile(t.Key)
	if err != nil {
		return tls.Certificate{}, fieldErr("tls.key", 0, err)
	}
	defer clear(keyPEM)

	plain, decrypted, err := decryptKeyPEM(keyPEM, t.Password)
	if err != nil {
		return tls.Certificate{}, fieldErr("tls.key", 0, err)
	}
	if decrypted {
		defer clear(plain)
	}

	cert, err := tls.X509KeyPair(certPEM, plain)
	if err != nil {
		return tls.Certificate{}, fieldErr("tls", 0, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fieldErr("tls.cert", 0, err)
		}
		cert.Leaf = leaf
	}
	if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 {
		return tls.Certificate{}, fieldErr("tls.cert", 0, ErrNoSAN)
	}
	return cert, nil
}

// decryptKeyPEM returns keyPEM itself if its private key block is not
// encrypted, or a new PEM buffer holding the decrypted key (decrypted=true).
func decryptKeyPEM(keyPEM []byte, password string) (out []byte, decrypted bool, err error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return keyPEM, false, nil // let tls.X509KeyPair report the missing key
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, false, errors.New("PKCS#8 encrypted private keys are not supported; use a legacy encrypted PEM key or an unencrypted key")
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		//lint:ignore SA1019 KES writes legacy encrypted PEM keys (RFC 1423) and reads them with tls.password; Keyraft must load them too.
		if !x509.IsEncryptedPEMBlock(block) {
			return keyPEM, false, nil
		}
		if password == "" {
			return nil, false, ErrPasswordRequired
		}
		//lint:ignore SA1019 KES writes legacy encrypted PEM keys (RFC 1423) and reads them with tls.password; Keyraft must load them too.
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return nil, false, fmt.Errorf("decrypting private key: %w", err)
		}
		defer clear(der)
		return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}), true, nil
	}
}

// LoadCAPool returns a copy of the system certificate pool with the
// certificates from t.CA added: a PEM file, or every regular file in a
// directory (files without PEM certificates are skipped). With t.CA empty
// it returns the system pool alone (an empty pool if the system has none).
//
// Errors: a *FieldError for tls.ca wrapping the os error, a certificate
// parse error, or "no certificates found" when t.CA yields none.
func (t TLS) LoadCAPool() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if t.CA == "" {
		return pool, nil
	}
	info, err := os.Stat(t.CA)
	if err != nil {
		return nil, fieldErr("tls.ca", 0, err)
	}
	files := []string{t.CA}
	if info.IsDir() {
		entries, err := os.ReadDir(t.CA)
		if err != nil {
			return nil, fieldErr("tls.ca", 0, err)
		}
		files = files[:0]
		for _, e := range entries {
			p := filepath.Join(t.CA, e.Name())
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				files = append(files, p)
			}
		}
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fieldErr("tls.ca", 0, err)
		}
		certs, err := parseCerts(data)
		if err != nil {
			return nil, fieldErr("tls.ca", 0, fmt.Errorf("%s: %w", f, err))
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
		n += len(certs)
	}
	if n == 0 {
		return nil, fieldErrf("tls.ca", 0, "no certificates found in %s", t.CA)
	}
	return pool, nil
}

// parseCerts parses every CERTIFICATE block of a PEM document.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}
