package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/kes"
)

// apiKeyVectors are the API key → identity vectors of spec §3.5.
var apiKeyVectors = []struct{ key, identity string }{
	{"kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs", "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"},
	{"kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"},
}

func TestAPIKeyVectors(t *testing.T) {
	for _, v := range apiKeyVectors {
		k, err := ParseAPIKey(v.key)
		if err != nil {
			t.Fatalf("ParseAPIKey(%s): %v", v.key, err)
		}
		if got := k.Identity(); got != v.identity {
			t.Errorf("identity of %s = %s, want %s", v.key, got, v.identity)
		}
		if got := k.String(); got != v.key {
			t.Errorf("String() = %s, want %s", got, v.key)
		}
		// The certificate carries the same identity.
		cert, err := k.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		if got := Of(cert.Leaf); got != v.identity {
			t.Errorf("certificate identity = %s, want %s", got, v.identity)
		}
	}
}

func TestParseAPIKeyErrors(t *testing.T) {
	good := apiKeyVectors[0].key
	raw := strings.TrimPrefix(good, "kes:v1:")
	for _, s := range []string{
		"",
		raw,                                 // no prefix
		"kes:v2:" + raw,                     // wrong version
		"kes:v1:%%%",                        // not base64
		"kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8", // too short
		"kes:v1:AWaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs", // type byte 1
	} {
		if _, err := ParseAPIKey(s); !errors.Is(err, ErrInvalidAPIKey) {
			t.Errorf("ParseAPIKey(%q) error = %v, want ErrInvalidAPIKey", s, err)
		}
	}
	if _, err := ParseAPIKey("  " + good + "\n"); err != nil {
		t.Errorf("surrounding space: %v", err)
	}
}

func TestAPIKeyRoundTrip(t *testing.T) {
	k, err := GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseAPIKey(k.String())
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(k2) || k.Identity() != k2.Identity() || k.String() != k2.String() {
		t.Fatal("round trip changed the key")
	}
	if len(k.Identity()) != 64 {
		t.Fatalf("identity %q is not 64 hex chars", k.Identity())
	}
	k3, err := APIKeyFromPrivateKey(k.PrivateKey())
	if err != nil || !k3.Equal(k) {
		t.Fatalf("APIKeyFromPrivateKey: %v", err)
	}
	// Deterministic from the random source.
	seed := bytes.Repeat([]byte{7}, 32)
	a, _ := GenerateAPIKey(bytes.NewReader(seed))
	if !bytes.Equal(a.PrivateKey().Seed(), seed) {
		t.Fatal("seed not taken from the reader")
	}
	if _, err := GenerateAPIKey(bytes.NewReader(seed[:5])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short reader: %v", err)
	}
	var zero APIKey
	if zero.String() != "" || zero.Identity() != "" || zero.PrivateKey() != nil {
		t.Fatal("zero APIKey is not empty")
	}
	if _, err := zero.Certificate(); err == nil {
		t.Fatal("zero APIKey produced a certificate")
	}
}

func TestAPIKeyCertificate(t *testing.T) {
	k, _ := ParseAPIKey(apiKeyVectors[1].key)
	before := time.Now().Add(-time.Second)
	c, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	cert := c.Leaf
	if cert.Subject.CommonName != k.Identity() {
		t.Errorf("CN = %s", cert.Subject.CommonName)
	}
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("must be a valid non-CA certificate")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %v", cert.KeyUsage)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ext key usage = %v", cert.ExtKeyUsage)
	}
	if cert.NotBefore.Before(before.Truncate(time.Second)) || cert.NotBefore.After(time.Now()) {
		t.Errorf("NotBefore = %v", cert.NotBefore)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != 90*24*time.Hour {
		t.Errorf("validity = %v", d)
	}
	if bits := cert.SerialNumber.BitLen(); bits > 128 || bits < 64 {
		t.Errorf("serial has %d bits", bits)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	c2, _ := k.Certificate()
	if c2.Leaf.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("serials repeat")
	}
}

// spkiHash hashes the PKIX encoding of pub, computed without Of.
func spkiHash(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func TestCertificateIdentity(t *testing.T) {
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	// Ed25519 SPKI built by hand (spec §3.1): 302a300506032b6570032100 || key.
	prefix, _ := hex.DecodeString("302a300506032b6570032100")
	sum := sha256.Sum256(append(prefix, edPub...))
	edByHand := hex.EncodeToString(sum[:])

	for _, tc := range []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"ed25519", edKey, edByHand},
		{"ecdsa", ecKey, spkiHash(t, ecKey.Public())},
		{"rsa", rsaKey, spkiHash(t, rsaKey.Public())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, der, err := SelfSigned(tc.key, CertOptions{Subject: "x", ServerAuth: true, ClientAuth: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := Of(cert); got != tc.want {
				t.Fatalf("Of = %s, want %s", got, tc.want)
			}
			if got, _ := OfPublicKey(tc.key.Public()); got != tc.want {
				t.Fatalf("OfPublicKey = %s, want %s", got, tc.want)
			}
			parsed, err := ParseCertificatePEM(EncodeCertificatePEM(der))
			if err != nil || Of(parsed) != tc.want {
				t.Fatalf("PEM round trip: %v", err)
			}
			keyPEM, err := EncodePrivateKeyPEM(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKeyPEM(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := OfPublicKey(back.Public()); got != tc.want {
				t.Fatal("private key PEM round trip changed the key")
			}
		})
	}
	if Of(nil) != "" {
		t.Error("Of(nil) must be empty")
	}
	if _, err := OfPublicKey(struct{}{}); err == nil {
		t.Error("OfPublicKey accepted an unknown key type")
	}
}

func TestSelfSignedOptions(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ips, err := LocalIPs()
	if err != nil {
		t.Fatal(err)
	}
	if !ips[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("LocalIPs()[0] = %v", ips[0])
	}
	cert, _, err := SelfSigned(key, CertOptions{
		Subject: "localhost", IPs: ips, DNSNames: []string{"localhost"},
		Expiry: time.Hour, ServerAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "localhost" || len(cert.IPAddresses) != len(ips) || cert.DNSNames[0] != "localhost" {
		t.Errorf("subject/SANs wrong: %v %v %v", cert.Subject, cert.IPAddresses, cert.DNSNames)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != time.Hour {
		t.Errorf("validity %v", d)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ext key usage = %v", cert.ExtKeyUsage)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	// Default subject is the identity; default expiry 90 days.
	cert, _, _ = SelfSigned(key, CertOptions{})
	if id, _ := OfPublicKey(key.Public()); cert.Subject.CommonName != id {
		t.Errorf("default CN = %s", cert.Subject.CommonName)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != DefaultCertExpiry {
		t.Errorf("default validity %v", d)
	}
	if _, _, err := SelfSigned(key, CertOptions{Expiry: -time.Second}); err == nil {
		t.Error("negative expiry accepted")
	}
	if _, _, err := SelfSigned(nil, CertOptions{}); err == nil {
		t.Error("nil key accepted")
	}
}

// testCA creates a certificate marked as CA (basic constraints CA=true),
// signed by parent (self-signed when parent is nil).
func testCA(t *testing.T, name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA {
		t.Fatal("test CA is not marked as CA")
	}
	return cert, der, key
}

// testLeaf creates a non-CA client certificate signed by parent.
func testLeaf(t *testing.T, name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, der, key
}

func TestFromConnectionState(t *testing.T) {
	memberKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	member, _, _ := SelfSigned(memberKey, CertOptions{Subject: "member", ServerAuth: true, ClientAuth: true})
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _, _ := SelfSigned(otherKey, CertOptions{Subject: "other", ClientAuth: true})
	ownCA, _, _ := testCA(t, "own CA", nil, nil)
	root, _, rootKey := testCA(t, "root", nil, nil)
	inter, _, interKey := testCA(t, "intermediate", root, rootKey)
	leaf, _, _ := testLeaf(t, "client", inter, interKey)
	if Of(member) == Of(leaf) || Of(ownCA) == Of(member) {
		t.Fatal("test certificates share a key")
	}

	var (
		errNoTLS  = kes.Error{Code: 400, Message: "insecure connection: TLS is required"}
		errNoCert = kes.Error{Code: 400, Message: "tls: client certificate is required"}
		errMany   = kes.Error{Code: 400, Message: "tls: received more than one client certificate"}
	)
	peers := func(certs ...*x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: certs}
	}
	for _, tc := range []struct {
		name string
		cs   *tls.ConnectionState
		want string
		err  *kes.Error
	}{
		{name: "nil state", cs: nil, err: &errNoTLS},
		{name: "no certificate", cs: &tls.ConnectionState{}, err: &errNoCert},
		{name: "empty chain", cs: peers(), err: &errNoCert},
		{name: "nil leaf", cs: peers(nil, member), err: &errNoCert},
		{name: "single certificate", cs: peers(member), want: Of(member)},
		{name: "lone CA", cs: peers(ownCA), err: &errNoCert},
		// The chain attack: the handshake proves the key of ownCA only.
		{name: "leaf CA then member", cs: peers(ownCA, member), err: &errNoCert},
		{name: "leaf CA then two members", cs: peers(ownCA, member, other), err: &errNoCert},
		{name: "two non-CA", cs: peers(member, other), err: &errMany},
		{name: "two non-CA around a CA", cs: peers(member, inter, other), err: &errMany},
		{name: "leaf then intermediate", cs: peers(leaf, inter), want: Of(leaf)},
		{name: "leaf then intermediate and root", cs: peers(leaf, inter, root), want: Of(leaf)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromConnectionState(tc.cs)
			if tc.err != nil {
				var kerr kes.Error
				if !errors.As(err, &kerr) || kerr != *tc.err {
					t.Fatalf("got %q, err %#v; want err %#v", got, err, *tc.err)
				}
				if got != "" {
					t.Fatalf("identity %q returned with an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// handshakeAnyCert runs a real TLS handshake (TLS 1.2 or 1.3) against a
// server that requires a client certificate but verifies no chain, as the
// API port does with tls.auth off, and returns what FromConnectionState
// made of the client's certificates on the server side, together with the
// certificates the server received.
func handshakeAnyCert(t *testing.T, version uint16, client tls.Certificate) (string, []*x509.Certificate, error) {
	t.Helper()
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, serverDER, err := SelfSigned(serverKey, CertOptions{
		Subject: "localhost", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, ServerAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   version,
		MaxVersion:   version,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		id    string
		err   error
		certs []*x509.Certificate
		hsErr error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{hsErr: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{hsErr: err}
			return
		}
		cs := tc.ConnectionState()
		id, err := FromConnectionState(&cs)
		done <- result{id: id, err: err, certs: cs.PeerCertificates}
	}()

	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates:       []tls.Certificate{client},
		InsecureSkipVerify: true,
		MinVersion:         version,
		MaxVersion:         version,
	})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer conn.Close()
	_, _ = io.Copy(io.Discard, conn) // until the server closes
	r := <-done
	if r.hsErr != nil {
		t.Fatalf("server handshake: %v", r.hsErr)
	}
	return r.id, r.certs, r.err
}

// TestFromConnectionStateChainAttack presents, over a real handshake, a
// chain of a self-made CA certificate (whose key the client holds) and a
// member's certificate (whose key it does not): the handshake succeeds,
// yet the client must not be named after the member. A normal chain (leaf,
// intermediate) keeps working and is named after its leaf.
func TestFromConnectionStateChainAttack(t *testing.T) {
	memberKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	member, memberDER, _ := SelfSigned(memberKey, CertOptions{Subject: "member", ServerAuth: true, ClientAuth: true})
	_, ownCADER, ownCAKey := testCA(t, "own CA", nil, nil)
	root, _, rootKey := testCA(t, "root", nil, nil)
	inter, interDER, interKey := testCA(t, "intermediate", root, rootKey)
	leaf, leafDER, leafKey := testLeaf(t, "client", inter, interKey)

	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			attack := tls.Certificate{Certificate: [][]byte{ownCADER, memberDER}, PrivateKey: ownCAKey}
			id, certs, err := handshakeAnyCert(t, v.version, attack)
			// The attack reached FromConnectionState as built: the
			// member's certificate is in the chain the server received.
			if len(certs) != 2 || Of(certs[1]) != Of(member) || !certs[0].IsCA {
				t.Fatalf("server received %d certificates, not the attack chain", len(certs))
			}
			if !errors.Is(err, ErrNoClientCert) || id != "" {
				t.Fatalf("attack chain: identity %q, err %v; want %v", id, err, ErrNoClientCert)
			}

			normal := tls.Certificate{Certificate: [][]byte{leafDER, interDER}, PrivateKey: leafKey}
			id, certs, err = handshakeAnyCert(t, v.version, normal)
			if len(certs) != 2 {
				t.Fatalf("server received %d certificates of the normal chain", len(certs))
			}
			if err != nil || id != Of(leaf) {
				t.Fatalf("normal chain: identity %q, err %v; want %s", id, err, Of(leaf))
			}

			single := tls.Certificate{Certificate: [][]byte{memberDER}, PrivateKey: memberKey}
			if id, _, err := handshakeAnyCert(t, v.version, single); err != nil || id != Of(member) {
				t.Fatalf("single certificate: identity %q, err %v; want %s", id, err, Of(member))
			}
		})
	}
}

// TestAPIKeyHandshake runs a real TLS handshake with the API-key certificate
// against a server that requires any client certificate.
func TestAPIKeyHandshake(t *testing.T) {
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serverCert, serverDER, err := SelfSigned(serverKey, CertOptions{
		Subject: "localhost", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, ServerAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		cs := tc.ConnectionState()
		id, err := FromConnectionState(&cs)
		if err == nil {
			_, err = io.WriteString(conn, id)
		}
		done <- result{id: id, err: err}
	}()

	k, _ := GenerateAPIKey(nil)
	clientCert, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{clientCert},
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.id != k.Identity() || string(got) != k.Identity() {
		t.Fatalf("server saw %s (sent %q), want %s", r.id, got, k.Identity())
	}
}
