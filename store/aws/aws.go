// Package aws is the AWS Secrets Manager keystore backend: a store.Store that
// keeps every entry as one secret named Prefix + name, the layout KES uses
// (with an empty Prefix), so a keystore written by KES is readable unchanged.
//
// Every call runs under a deadline (Config.CallTimeout and the caller's
// context). Throttling, 5xx answers and transport errors are retried by the
// SDK's standard retryer with exponential backoff and full jitter until the
// attempt budget or the deadline runs out. Creates pass through a token
// bucket (Config.CreateRate) so that bursts queue instead of tripping the
// Secrets Manager write quota. A Create or Delete whose outcome is uncertain
// (a dropped connection, a retried call) is settled by reading the real state
// back before an error is reported.
//
// Store implements store.Versioned: an entry's version is the version ID of
// the secret's AWSCURRENT version, which changes whenever a new value is put
// (PutSecretValue, UpdateSecret, a rotation).
//
// Store implements store.Recoverable with Secrets Manager's own recovery
// window: ScheduleDelete deletes with a recovery window of 7 to 30 days,
// RestoreDeleted restores, Purge force-deletes (see recover.go).
//
// Values are never logged.
package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"

	"github.com/keyraft/keyraft/store"
)

// Defaults applied by Open to zero Config fields.
const (
	// DefaultCallTimeout bounds every Store method call.
	DefaultCallTimeout = 10 * time.Second
	// DefaultCreateRate is the sustained CreateSecret rate per second, below
	// the Secrets Manager quota of 50 write requests per second.
	DefaultCreateRate = 40.0
)

// maxNameLen is the longest secret name Secrets Manager accepts.
const maxNameLen = 512

// maxValueLen is the largest SecretString or SecretBinary Secrets Manager
// accepts, in bytes.
const maxValueLen = 64 << 10

// Config configures a Store. Only Region (or a region from the SDK's default
// configuration) is required.
type Config struct {
	// Endpoint is the Secrets Manager endpoint, with or without a scheme
	// ("secretsmanager.us-east-2.amazonaws.com" means https://...). Empty
	// uses the SDK's endpoint for Region.
	Endpoint string
	// Region is the AWS region. Empty uses the SDK default configuration
	// (AWS_REGION, shared config).
	Region string
	// KMSKey is the KMS key ID or ARN CreateSecret encrypts with. Empty uses
	// the account's aws/secretsmanager key.
	KMSKey string
	// Prefix is prepended to every name to form the secret name, and limits
	// List to secrets that start with it. Empty is KES-compatible.
	Prefix string

	// AccessKey, SecretKey and SessionToken are static credentials. If all
	// three are empty the SDK default chain is used (environment, shared
	// config and credentials files, web identity, ECS/EC2 instance role).
	AccessKey, SecretKey, SessionToken string

	// HTTPClient, if set, sends the Secrets Manager requests (tests use it);
	// its TLS settings are used as they are (AWS_CA_BUNDLE is not applied to
	// it) and its timeouts apply in addition to CallTimeout.
	HTTPClient *http.Client
	// CallTimeout bounds each Store method call, retries and re-checks
	// included. Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// CreateRate is the sustained number of CreateSecret calls per second.
	// Zero means DefaultCreateRate.
	CreateRate float64
}

// Store is a store.Store backed by AWS Secrets Manager. Its methods are safe
// for concurrent use.
type Store struct {
	client      *secretsmanager.Client
	prefix      string
	kmsKey      string
	callTimeout time.Duration
	creates     *rate.Limiter
	logger      hclog.Logger
	conns       *connTracker // connections Close ends; nil with Config.HTTPClient

	closeOnce sync.Once
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Versioned = (*Store)(nil)
)

// Open returns a Store for cfg. It makes no AWS call: use Status to check
// that the endpoint is reachable and the credentials are accepted, so that a
// node can start while AWS is unreachable. It returns an error for an
// invalid Config (bad endpoint or prefix, negative limits, no region) or if
// the SDK configuration cannot be loaded. logger may be nil; the Store logs
// through its sub-logger "keystore.aws".
func Open(ctx context.Context, cfg Config, logger hclog.Logger) (*Store, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.CallTimeout < 0 {
		return nil, fmt.Errorf("aws: negative call timeout %v", cfg.CallTimeout)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.CreateRate < 0 {
		return nil, fmt.Errorf("aws: negative create rate %v", cfg.CreateRate)
	}
	if cfg.CreateRate == 0 {
		cfg.CreateRate = DefaultCreateRate
	}
	if !validName(cfg.Prefix) || len(cfg.Prefix) >= maxNameLen {
		return nil, fmt.Errorf("aws: prefix %q: %w", cfg.Prefix, store.ErrInvalidName)
	}
	endpoint, err := normalizeEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}

	s := &Store{
		prefix:      cfg.Prefix,
		kmsKey:      cfg.KMSKey,
		callTimeout: cfg.CallTimeout,
		// Burst 1: never more than one create ahead of the sustained rate.
		creates: rate.NewLimiter(rate.Limit(cfg.CreateRate), 1),
		logger:  logger.Named("keystore.aws"),
	}

	opts := []func(*config.LoadOptions) error{config.WithRetryer(newRetryer)}
	if cfg.HTTPClient == nil {
		// The SDK's own client (so AWS_CA_BUNDLE and its transport defaults
		// apply), with enough idle connections for queued creates and a
		// dialer Close can shut down.
		s.conns = &connTracker{}
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(
			func(tr *http.Transport) {
				tr.MaxIdleConnsPerHost = 64
				if tr.DialContext == nil {
					tr.DialContext = (&net.Dialer{}).DialContext
				}
				tr.DialContext = s.conns.dialer(tr.DialContext)
			})))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" || cfg.SecretKey != "" || cfg.SessionToken != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws: load SDK configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("aws: no region configured (set region or AWS_REGION)")
	}
	s.client = secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
		if cfg.HTTPClient != nil {
			// Set here, not in the shared config: the SDK can only add a CA
			// bundle to its own client type and would reject this one.
			o.HTTPClient = cfg.HTTPClient
		}
		if endpoint != "" {
			o.BaseEndpoint = awssdk.String(endpoint)
		}
	})
	s.logger.Debug("opened", "region", awsCfg.Region, "endpoint", endpoint, "prefix", cfg.Prefix,
		"kms_key", cfg.KMSKey != "", "static_credentials", cfg.AccessKey != "")
	return s, nil
}

// normalizeEndpoint returns endpoint as an absolute http(s) URL: without a
// scheme, https:// is assumed. An empty endpoint stays empty.
func normalizeEndpoint(endpoint string) (string, error) {
	endpoint = strings.TrimSpace(endpoint)
	if endpoint == "" {
		return "", nil
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("aws: endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("aws: endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return "", fmt.Errorf("aws: endpoint %q has no host", endpoint)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// validName reports whether every byte of n is allowed in a Secrets Manager
// secret name: ASCII letters, digits and /_+=.@-.
func validName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/_+=.@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// secretID maps a store name to its secret name, or returns ErrInvalidName.
func (s *Store) secretID(name string) (string, error) {
	id := s.prefix + name
	if name == "" || len(id) > maxNameLen || !validName(name) {
		return "", fmt.Errorf("aws: name %q: %w", name, store.ErrInvalidName)
	}
	return id, nil
}

// callContext bounds ctx by the call timeout.
func (s *Store) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.callTimeout)
}

// Close closes the connections of the HTTP client Open created (a
// Config.HTTPClient is left alone). It always returns nil and may be called
// more than once; the Store must not be used afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.conns != nil {
			s.conns.closeAll()
		}
	})
	return nil
}
