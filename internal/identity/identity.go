// Package identity computes KES identities and handles KES API keys.
//
// A KES identity is the lowercase hex SHA-256 of a certificate's DER-encoded
// SubjectPublicKeyInfo, so re-issued certificates for the same key keep their
// identity. An API key ("kes:v1:...") is an Ed25519 seed; its identity is the
// identity of its public key, and clients present it to a server as a
// self-signed client certificate (APIKey.Certificate). The package also
// creates self-signed certificates for `keyraft identity new` and the dev
// server, and reads and writes the PEM forms of certificates and keys.
//
// All functions are safe for concurrent use; APIKey values are immutable.
package identity

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/keyraft/keyraft/internal/kes"
)

// The errors FromConnectionState returns, with KES's exact status and message.
var (
	ErrInsecureConnection = kes.Error{Code: 400, Message: "insecure connection: TLS is required"}
	ErrNoClientCert       = kes.Error{Code: 400, Message: "tls: client certificate is required"}
	ErrManyClientCerts    = kes.Error{Code: 400, Message: "tls: received more than one client certificate"}
)

// Of returns the identity of cert: the lowercase hex SHA-256 of its
// RawSubjectPublicKeyInfo. It returns "" when cert is nil; it never fails.
func Of(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// OfPublicKey returns the identity of any certificate carrying pub. It returns
// an error (wrapping the x509 error) when pub is not a key type that
// x509.MarshalPKIXPublicKey supports (RSA, ECDSA, Ed25519, ECDH).
func OfPublicKey(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:]), nil
}

// FromConnectionState returns the identity of the client of a TLS
// connection: the identity of PeerCertificates[0], the leaf certificate.
//
// The leaf is the only certificate whose private key the TLS handshake
// proved the client holds (its CertificateVerify signature); every further
// certificate is merely data the client sent, and anyone can copy another
// party's certificate (a node shows its own in every handshake). So the
// caller is never named after any certificate but the leaf. KES instead
// skips CA-marked certificates wherever they appear and names the caller
// after the one that remains, so a chain [self-made CA, victim's
// certificate], signed with the self-made CA's key, passes as the victim
// wherever the chain is not verified (tls.auth: off); Keyraft refuses it.
//
// The rules, with KES's exact error pairs (kes.Error values):
//   - cs is nil (no TLS): ErrInsecureConnection.
//   - no certificate: ErrNoClientCert.
//   - the leaf is marked as CA (basic constraints CA=true): ErrNoClientCert,
//     as KES answers for a lone CA certificate.
//   - another non-CA certificate follows the leaf: ErrManyClientCerts.
//     CA certificates after the leaf (intermediates of a normal chain) are
//     allowed and ignored.
//
// The certificate chain is not verified here; that is the TLS layer's job
// (tls.auth: on).
func FromConnectionState(cs *tls.ConnectionState) (string, error) {
	if cs == nil {
		return "", ErrInsecureConnection
	}
	if len(cs.PeerCertificates) == 0 {
		return "", ErrNoClientCert
	}
	leaf := cs.PeerCertificates[0]
	if leaf == nil || leaf.IsCA {
		return "", ErrNoClientCert
	}
	for _, cert := range cs.PeerCertificates[1:] {
		if cert != nil && !cert.IsCA {
			return "", ErrManyClientCerts
		}
	}
	return Of(leaf), nil
}
