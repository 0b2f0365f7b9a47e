package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyraft/keyraft/internal/identity"
)

// DefaultCooldown is how long an endpoint that failed stays benched before it
// is probed again.
const DefaultCooldown = 30 * time.Second

// EnclaveHeader is the request header that selects an enclave.
const EnclaveHeader = "Kes-Enclave"

// Client is a KES v1 API client for one or more endpoints. Create it with
// New. A Client is safe for concurrent use.
type Client struct {
	http           *http.Client
	lb             *balancer
	enclave        string
	attemptTimeout time.Duration
}

// Option configures New.
type Option func(*config) error

type config struct {
	certs      []tls.Certificate
	roots      *x509.CertPool
	insecure   bool
	tlsSet     bool
	httpClient *http.Client
	enclave    string
	cooldown   time.Duration
	attempt    time.Duration
}

// WithCertificate makes the client authenticate with cert. Combined with
// WithAPIKey, the certificate given last wins.
func WithCertificate(cert tls.Certificate) Option {
	return func(c *config) error {
		c.certs = []tls.Certificate{cert}
		c.tlsSet = true
		return nil
	}
}

// WithAPIKey makes the client authenticate with the self-signed certificate
// derived from key (identity.APIKey.Certificate). New fails if the key is the
// zero value.
func WithAPIKey(key identity.APIKey) Option {
	return func(c *config) error {
		cert, err := key.Certificate()
		if err != nil {
			return fmt.Errorf("client: API key: %w", err)
		}
		c.certs = []tls.Certificate{cert}
		c.tlsSet = true
		return nil
	}
}

// WithRootCAs sets the CA pool that verifies server certificates (default:
// the system pool).
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) error {
		c.roots = pool
		c.tlsSet = true
		return nil
	}
}

// WithInsecureSkipVerify disables verification of server certificates. Only
// for tests and dev servers.
func WithInsecureSkipVerify() Option {
	return func(c *config) error {
		c.insecure = true
		c.tlsSet = true
		return nil
	}
}

// WithEnclave sends the header "Kes-Enclave: name" on key, policy and identity
// requests. An empty name sends no header (the server's default enclave).
func WithEnclave(name string) Option {
	return func(c *config) error {
		c.enclave = name
		return nil
	}
}

// WithHTTPClient uses hc, unchanged, for every request; its transport must do
// the TLS set-up itself. New fails if it is combined with a TLS option
// (WithCertificate, WithAPIKey, WithRootCAs, WithInsecureSkipVerify) or hc is nil.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("client: nil HTTP client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithEndpointCooldown sets how long a failed endpoint is benched before it is
// probed again (default DefaultCooldown). New fails if d is not positive.
func WithEndpointCooldown(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("client: endpoint cool-down %v is not positive", d)
		}
		c.cooldown = d
		return nil
	}
}

// WithAttemptTimeout bounds each attempt against one endpoint (until the whole
// response is read; for log streams until the response headers arrive). An
// attempt that runs out of time benches the endpoint and, when the request may
// be retried, moves on to the next endpoint. 0 (the default) means no bound
// other than the caller's context. New fails if d is negative.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("client: attempt timeout %v is negative", d)
		}
		c.attempt = d
		return nil
	}
}

// New returns a client for the given endpoints. Endpoints may be "host:port",
// "https://host:port" or "http://host:port" (rewritten to https); surrounding
// space and a trailing "/" are removed. It fails when no endpoint is given, an
// endpoint is not a valid host[:port] URL or has a path, or an option fails.
func New(endpoints []string, opts ...Option) (*Client, error) {
	cfg := config{cooldown: DefaultCooldown}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("client: no endpoint")
	}
	urls := make([]string, 0, len(endpoints))
	for _, ep := range endpoints {
		u, err := normalizeEndpoint(ep)
		if err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	hc := cfg.httpClient
	if hc != nil && cfg.tlsSet {
		return nil, errors.New("client: WithHTTPClient cannot be combined with TLS options")
	}
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = true
		tr.TLSClientConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			Certificates:       cfg.certs,
			RootCAs:            cfg.roots,
			InsecureSkipVerify: cfg.insecure, //nolint:gosec // explicit opt-in
		}
		hc = &http.Client{Transport: tr}
	}
	return &Client{
		http:           hc,
		lb:             newBalancer(urls, cfg.cooldown),
		enclave:        cfg.enclave,
		attemptTimeout: cfg.attempt,
	}, nil
}

// normalizeEndpoint turns an endpoint into "https://host[:port]".
func normalizeEndpoint(ep string) (string, error) {
	s := strings.TrimSpace(ep)
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		s = "https://" + rest
	} else if !strings.HasPrefix(s, "https://") {
		s = "https://" + s
	}
	s = strings.TrimSuffix(s, "/")
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("client: invalid endpoint %q: %w", ep, err)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("client: invalid endpoint %q: want host[:port]", ep)
	}
	return "https://" + u.Host, nil
}

// Endpoints returns the normalized endpoint URLs in configuration order.
func (c *Client) Endpoints() []string {
	eps := make([]string, len(c.lb.endpoints))
	for i, ep := range c.lb.endpoints {
		eps[i] = ep.url
	}
	return eps
}

// Enclave returns a client that sends requests to the named enclave (see
// WithEnclave) and shares c's endpoints, connections and health state.
func (c *Client) Enclave(name string) *Client {
	c2 := *c
	c2.enclave = name
	return &c2
}

// Node returns a client that talks only to endpoint, e.g. to ask every node
// for its status. It shares c's connections and, when endpoint is one of c's
// endpoints, its health state. It fails for an invalid endpoint.
func (c *Client) Node(endpoint string) (*Client, error) {
	u, err := normalizeEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	c2 := *c
	c2.lb = c.lb.only(u)
	return &c2, nil
}
