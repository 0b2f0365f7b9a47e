package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
)

// DevConfig builds the configuration of `keyraft server --dev` in dir: a
// self-signed ECDSA P-256 server certificate (CN localhost, the local IP
// addresses, 90 days), a fresh admin API key, the fs keystore in
// dir/keystore and a one-node cluster bootstrapped in dir/data. The
// returned API key is the admin's.
func DevConfig(dir, address string) (*config.Config, identity.APIKey, error) {
	apiKey, err := identity.GenerateAPIKey(rand.Reader)
	if err != nil {
		return nil, identity.APIKey{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, identity.APIKey{}, err
	}
	ips, _ := identity.LocalIPs()
	ips = append(ips, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	_, der, err := identity.SelfSigned(key, identity.CertOptions{
		Subject: "localhost", IPs: ips, DNSNames: []string{"localhost"},
		Expiry: 90 * 24 * time.Hour, ServerAuth: true, ClientAuth: true,
	})
	if err != nil {
		return nil, identity.APIKey{}, err
	}
	keyPEM, err := identity.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, identity.APIKey{}, err
	}
	certFile, keyFile := filepath.Join(dir, "server.cert"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, identity.EncodeCertificatePEM(der), 0o600); err != nil {
		return nil, identity.APIKey{}, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, identity.APIKey{}, err
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, identity.APIKey{}, fmt.Errorf("server: --addr %q: %w", address, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	cfg := &config.Config{
		Address:  address,
		Admin:    apiKey.Identity(),
		TLS:      config.TLS{Cert: certFile, Key: keyFile},
		Cache:    config.Cache{Any: 5 * time.Minute, Unused: 30 * time.Second},
		Keystore: config.Keystore{FS: &config.FS{Path: filepath.Join(dir, "keystore")}},
		Cluster: config.Cluster{
			NodeID:       "dev",
			DataDir:      filepath.Join(dir, "data"),
			RaftAddress:  net.JoinHostPort(host, "0"),
			APIAdvertise: "https://" + net.JoinHostPort(host, portOf(address)),
			Bootstrap:    true,
		},
	}
	return cfg, apiKey, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
