package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/keyraft/keyraft/internal/identity"
)

type tlsPool struct{ pool *x509.CertPool }

// loadTLS (re)loads the server certificate and CA pool from the config.
// On error the previous certificate stays in use.
func (s *Server) loadTLS() error {
	cert, err := s.cfg.TLS.LoadCertificate()
	if err != nil {
		return fmt.Errorf("server: tls: %w", err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("server: tls.cert: %w", err)
		}
	}
	var pool *x509.CertPool
	if s.cfg.TLS.CA != "" || s.auth == tls.RequireAndVerifyClientCert || s.auth == tls.VerifyClientCertIfGiven {
		if pool, err = s.cfg.TLS.LoadCAPool(); err != nil {
			return fmt.Errorf("server: tls.ca: %w", err)
		}
	}
	s.tls.Store(&cert)
	s.ca.Store(&tlsPool{pool: pool})
	s.identity = identity.Of(cert.Leaf)
	return nil
}

func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.tls.Load(), nil
}

// apiTLSConfig is called per connection, so a SIGHUP reload takes effect
// for new connections without a restart.
//
// The CA pool is offered only when client certificates are verified: a
// server that names CAs in its certificate request makes Go clients (MinIO,
// the CLI) withhold a certificate no listed CA issued, such as an API key's
// self-signed one, so with tls.auth off every request would fail.
func (s *Server) apiTLSConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	var clientCAs *x509.CertPool
	if s.auth == tls.VerifyClientCertIfGiven || s.auth == tls.RequireAndVerifyClientCert {
		clientCAs = s.ca.Load().pool
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
		ClientAuth:     s.auth,
		ClientCAs:      clientCAs,
		NextProtos:     []string{"h2", "http/1.1"},
	}, nil
}
