package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// DefaultCertExpiry is the validity SelfSigned uses when CertOptions.Expiry is 0.
const DefaultCertExpiry = 90 * 24 * time.Hour

// CertOptions configures SelfSigned.
type CertOptions struct {
	// Subject is the subject common name; empty means the identity of the key.
	Subject string
	// IPs and DNSNames are the subject alternative names.
	IPs      []net.IP
	DNSNames []string
	// Expiry is the validity period from now; 0 means DefaultCertExpiry.
	Expiry time.Duration
	// ServerAuth and ClientAuth select the extended key usages. With neither
	// set the certificate carries no extended key usage (valid for any).
	ServerAuth, ClientAuth bool
}

// SelfSigned creates a certificate for key, signed by key itself: random
// 128-bit serial, NotBefore now, NotAfter now+Expiry, key usage
// DigitalSignature (plus KeyEncipherment for RSA server certificates), basic
// constraints valid and not a CA. It returns the parsed certificate and its
// DER bytes. It fails for a negative Expiry, a key type x509 does not support
// (RSA, ECDSA and Ed25519 are), or a signing error; errors are wrapped.
func SelfSigned(key crypto.Signer, opts CertOptions) (*x509.Certificate, []byte, error) {
	if key == nil {
		return nil, nil, errors.New("identity: self-signed certificate: no key")
	}
	if opts.Expiry < 0 {
		return nil, nil, fmt.Errorf("identity: self-signed certificate: negative expiry %v", opts.Expiry)
	}
	expiry := opts.Expiry
	if expiry == 0 {
		expiry = DefaultCertExpiry
	}
	subject := opts.Subject
	if subject == "" {
		id, err := OfPublicKey(key.Public())
		if err != nil {
			return nil, nil, fmt.Errorf("identity: self-signed certificate: %w", err)
		}
		subject = id
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("identity: self-signed certificate: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now,
		NotAfter:              now.Add(expiry),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IPAddresses:           opts.IPs,
		DNSNames:              opts.DNSNames,
	}
	if opts.ServerAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		if _, ok := key.Public().(*rsa.PublicKey); ok {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}
	if opts.ClientAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: self-signed certificate: %w", err)
	}
	return cert, der, nil
}

// LocalIPs returns 127.0.0.1 followed by the unicast IP addresses of the local
// network interfaces (the IP SANs of the dev server certificate), without
// duplicates. It fails only when the interface addresses cannot be read.
func LocalIPs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("identity: local addresses: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, a := range addrs {
		ipNet, ok := a.(*net.IPNet)
		if !ok || ipNet.IP.IsUnspecified() || ipNet.IP.IsMulticast() {
			continue
		}
		dup := false
		for _, ip := range ips {
			if ip.Equal(ipNet.IP) {
				dup = true
				break
			}
		}
		if !dup {
			ips = append(ips, ipNet.IP)
		}
	}
	return ips, nil
}

// EncodeCertificatePEM returns the PEM "CERTIFICATE" block of a DER certificate.
func EncodeCertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodePrivateKeyPEM returns the PEM "PRIVATE KEY" block (PKCS#8) of key.
// It fails, wrapping the x509 error, for unsupported key types. The result is
// a secret; the intermediate DER buffer is cleared.
func EncodePrivateKeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: encode private key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertificatePEM parses the first "CERTIFICATE" block in data, skipping
// other blocks. It fails when there is none or it does not parse (wrapped).
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("identity: no PEM certificate found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity: parse certificate: %w", err)
		}
		return cert, nil
	}
}

// ParsePrivateKeyPEM parses the first private key block in data: PKCS#8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
// It returns an *ecdsa.PrivateKey, *rsa.PrivateKey or ed25519.PrivateKey. It
// fails when no such block exists, the block is encrypted, or it does not
// parse; errors are wrapped and never contain key bytes.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("identity: no PEM private key found")
		}
		if _, ok := block.Headers["DEK-Info"]; ok {
			return nil, errors.New("identity: encrypted PEM private keys are not supported")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		clear(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity: parse private key: %w", err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("identity: unsupported private key type %T", key)
		}
	}
}
