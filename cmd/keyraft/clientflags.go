package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
)

// defaultServer is the endpoint used when neither --server nor one of the
// server environment variables is set.
const defaultServer = "127.0.0.1:7373"

// attemptTimeout bounds each request to one endpoint, so that a hanging node
// costs at most that long before the next endpoint is tried.
const attemptTimeout = 15 * time.Second

// The environment variables the client commands read, in precedence order
// (the first one that is set wins), as KES and MinIO name them.
var (
	envServer  = []string{"MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"}
	envAPIKey  = []string{"MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY"}
	envKeyFile = []string{"MINIO_KES_KEY_FILE", "KES_CLIENT_KEY", "MINIO_KES_CLIENT_KEY", "MINIO_KMS_KES_KEY_FILE"}
	envCert    = []string{"MINIO_KES_CERT_FILE", "KES_CLIENT_CERT", "MINIO_KES_CLIENT_CERT", "MINIO_KMS_KES_CERT_FILE"}
	envCA      = []string{"MINIO_KMS_KES_CAPATH"}
	envEnclave = []string{"KES_ENCLAVE", "MINIO_KMS_KES_ENCLAVE"}
)

// errCredentialConflict is wrapped when both an API key and a client
// certificate/key are configured.
var errCredentialConflict = errors.New("an API key and a client certificate/key are mutually exclusive")

// errNoCredentials is wrapped when no API key and no client certificate is
// configured.
var errNoCredentials = errors.New("no client credentials")

// clientFlags are the connection and output flags every client command has.
type clientFlags struct {
	servers  string
	apiKey   string
	certFile string
	keyFile  string
	caPath   string
	enclave  string
	insecure bool
	json     bool
}

// addClientFlags registers the client flags on cmd. Call it after the
// command's own flags: a shorthand the command already uses (e.g. -s for
// status --short) is left to the command and the client flag gets none.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	f := &clientFlags{}
	fs := cmd.Flags()
	short := func(s string) string {
		if fs.ShorthandLookup(s) != nil {
			return ""
		}
		return s
	}
	fs.StringVarP(&f.servers, "server", short("s"), "",
		"server endpoint(s), comma-separated (env MINIO_KES_SERVER, KES_SERVER, MINIO_KMS_KES_ENDPOINT; default "+defaultServer+")")
	fs.StringVarP(&f.apiKey, "api-key", short("a"), "",
		"API key to authenticate with (env MINIO_KES_API_KEY, KES_API_KEY, MINIO_KMS_KES_API_KEY)")
	fs.StringVar(&f.certFile, "cert", "",
		"client certificate file (env MINIO_KES_CERT_FILE, KES_CLIENT_CERT, MINIO_KES_CLIENT_CERT, MINIO_KMS_KES_CERT_FILE)")
	fs.StringVar(&f.keyFile, "key", "",
		"client private key file (env MINIO_KES_KEY_FILE, KES_CLIENT_KEY, MINIO_KES_CLIENT_KEY, MINIO_KMS_KES_KEY_FILE)")
	fs.BoolVarP(&f.insecure, "insecure", short("k"), false, "skip verification of the server certificate")
	fs.StringVar(&f.caPath, "ca", "", "CA certificate file or directory that verifies the server (env MINIO_KMS_KES_CAPATH)")
	fs.StringVarP(&f.enclave, "enclave", short("e"), "", "enclave to operate on (env KES_ENCLAVE, MINIO_KMS_KES_ENCLAVE)")
	fs.BoolVar(&f.json, "json", false, "print JSON (the default when stdout is not a terminal)")
	return f
}

// lookupEnv returns the value and name of the first non-empty variable.
func lookupEnv(names []string) (value, name string) {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v, n
		}
	}
	return "", ""
}

// endpoints returns the configured server endpoints: --server, else the
// environment, else defaultServer. Empty list elements are dropped.
func (f *clientFlags) endpoints() []string {
	s := f.servers
	if s == "" {
		s, _ = lookupEnv(envServer)
	}
	if s == "" {
		s = defaultServer
	}
	var eps []string
	for _, ep := range strings.Split(s, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return eps
}

// credential is the resolved authentication input; source names where each
// value came from, for error messages.
type credential struct {
	apiKey, apiKeySrc   string
	certFile, certSrc   string
	keyFile, keyFileSrc string
}

// credentials resolves the API key and client certificate/key. Flags take
// precedence: when any credential flag is given, the environment is only
// consulted for the missing half of a certificate/key pair. It fails, wrapping
// errCredentialConflict, when an API key and a certificate/key come from the
// same level (both flags or both environment), and wrapping errNoCredentials
// when nothing is configured.
func (f *clientFlags) credentials() (credential, error) {
	var c credential
	flagAPI := f.apiKey != ""
	flagTLS := f.certFile != "" || f.keyFile != ""
	switch {
	case flagAPI && flagTLS:
		return c, fmt.Errorf("%w: use either --api-key or --cert/--key", errCredentialConflict)
	case flagAPI:
		c.apiKey, c.apiKeySrc = f.apiKey, "--api-key"
		return c, nil
	case flagTLS:
		c.certFile, c.certSrc = f.certFile, "--cert"
		c.keyFile, c.keyFileSrc = f.keyFile, "--key"
	default:
		c.apiKey, c.apiKeySrc = lookupEnv(envAPIKey)
	}
	if c.certFile == "" {
		c.certFile, c.certSrc = lookupEnv(envCert)
	}
	if c.keyFile == "" {
		c.keyFile, c.keyFileSrc = lookupEnv(envKeyFile)
	}
	if c.apiKey != "" {
		if c.certFile != "" || c.keyFile != "" {
			src := c.certSrc
			if src == "" {
				src = c.keyFileSrc
			}
			return c, fmt.Errorf("%w: %s and %s are both set; unset one of them", errCredentialConflict, c.apiKeySrc, src)
		}
		return c, nil
	}
	switch {
	case c.certFile == "" && c.keyFile == "":
		return c, fmt.Errorf("%w: set --api-key (or KES_API_KEY), or --cert and --key (or KES_CLIENT_CERT and KES_CLIENT_KEY)", errNoCredentials)
	case c.certFile == "":
		return c, fmt.Errorf("%w: a client key (%s) needs a certificate: set --cert or KES_CLIENT_CERT", errNoCredentials, c.keyFileSrc)
	case c.keyFile == "":
		return c, fmt.Errorf("%w: a client certificate (%s) needs a private key: set --key or KES_CLIENT_KEY", errNoCredentials, c.certSrc)
	}
	return c, nil
}

// clientSettings is what the client flags and environment resolve to.
type clientSettings struct {
	cert     tls.Certificate // from the API key, or the certificate and key files
	roots    *x509.CertPool  // nil: the system roots
	insecure bool            // -k: do not verify the server certificate
	enclave  string          // "" : the default enclave
}

// settings resolves the credentials (API key or certificate files), the
// CA and the enclave from the flags and the environment. Errors name the
// flag or variable that holds the bad value.
func (f *clientFlags) settings() (clientSettings, error) {
	var cs clientSettings
	cred, err := f.credentials()
	if err != nil {
		return cs, err
	}
	if cred.apiKey != "" {
		key, err := identity.ParseAPIKey(cred.apiKey)
		if err != nil {
			return cs, fmt.Errorf("%s: %w", cred.apiKeySrc, err)
		}
		if cs.cert, err = key.Certificate(); err != nil {
			return cs, fmt.Errorf("%s: %w", cred.apiKeySrc, err)
		}
	} else if cs.cert, err = loadClientCert(cred); err != nil {
		return cs, err
	}
	if cs.insecure = f.insecure; !cs.insecure {
		ca, src := f.caPath, "--ca"
		if ca == "" {
			ca, src = lookupEnv(envCA)
		}
		if ca != "" {
			if cs.roots, err = loadCAPool(ca); err != nil {
				return cs, fmt.Errorf("%s: %w", src, err)
			}
		}
	}
	if cs.enclave = f.enclave; cs.enclave == "" {
		cs.enclave, _ = lookupEnv(envEnclave)
	}
	return cs, nil
}

// client builds a KES API client from the flags and the environment. It fails
// for conflicting or missing credentials, an invalid API key, unreadable or
// mismatched certificate/key files, an unreadable CA path or an invalid
// endpoint.
func (f *clientFlags) client() (*client.Client, error) {
	cs, err := f.settings()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{
		client.WithAttemptTimeout(attemptTimeout),
		client.WithCertificate(cs.cert),
		client.WithEnclave(cs.enclave),
	}
	if cs.insecure {
		opts = append(opts, client.WithInsecureSkipVerify())
	} else if cs.roots != nil {
		opts = append(opts, client.WithRootCAs(cs.roots))
	}
	return client.New(f.endpoints(), opts...)
}

// loadClientCert reads the certificate chain and private key files. Encrypted
// PEM keys are not supported. The key file's bytes are cleared after parsing.
func loadClientCert(c credential) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", c.certSrc, err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", c.keyFileSrc, err)
	}
	defer clear(keyPEM)
	if _, err := identity.ParsePrivateKeyPEM(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", c.keyFileSrc, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	return cert, nil
}

// loadCAPool reads CA certificates from a PEM file or from every regular file
// in a directory. It fails when no certificate is found.
func loadCAPool(path string) (*x509.CertPool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	found := false
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if pool.AppendCertsFromPEM(data) {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no PEM certificate found in %s", path)
	}
	return pool, nil
}

// terminalWriter is implemented by writers that know whether they are a
// terminal (tests use it to get the human-readable output).
type terminalWriter interface{ IsTerminal() bool }

// isTerminal reports whether w is a terminal: a character device file or a
// terminalWriter that says so.
func isTerminal(w io.Writer) bool {
	switch w := w.(type) {
	case terminalWriter:
		return w.IsTerminal()
	case *os.File:
		fi, err := w.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return false
}

// printer writes a command's output either human-readable or as JSON.
type printer struct {
	out  io.Writer
	json bool // print JSON
	tty  bool // out is a terminal
}

// newPrinter returns the printer for cmd's stdout: JSON when asJSON is set or
// stdout is not a terminal.
func newPrinter(cmd *cobra.Command, asJSON bool) printer {
	out := cmd.OutOrStdout()
	tty := isTerminal(out)
	return printer{out: out, json: asJSON || !tty, tty: tty}
}

// printer returns the printer that honours f.json.
func (f *clientFlags) printer(cmd *cobra.Command) printer { return newPrinter(cmd, f.json) }

// JSON writes v as one JSON document: indented on a terminal, else compact
// on one line. It returns the write error.
func (p printer) JSON(v any) error {
	enc := json.NewEncoder(p.out)
	enc.SetEscapeHTML(false)
	if p.tty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// Line writes one compact JSON line (for streams). It returns the write error.
func (p printer) Line(v any) error {
	enc := json.NewEncoder(p.out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Printf writes human-readable text. Write errors are ignored: the commands
// print small amounts to stdout, and a closed stdout leaves nobody to tell.
func (p printer) Printf(format string, args ...any) { fmt.Fprintf(p.out, format, args...) }

// listPrefix turns a CLI list pattern into the list resource the server
// expects: a trailing "*" is dropped (so "my*" and "my" both act as prefix,
// on KES and on Keyraft) and an empty prefix becomes "*" (everything).
func listPrefix(pattern string) string {
	p := strings.TrimSuffix(pattern, "*")
	if p == "" {
		return "*"
	}
	return p
}

// formatTime renders a server timestamp for people: local time and age.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	age := time.Since(t).Truncate(time.Second)
	if age < 0 {
		age = 0
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05 MST"), age)
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
