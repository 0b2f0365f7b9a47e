// Package config loads and validates Keyraft's server configuration: a
// KES-compatible YAML file (the same keys KES reads, so existing KES configs
// such as those of MinIO's AWS Secrets Manager guide load unchanged) plus the
// Keyraft-only "cluster" and "limits" sections.
//
// Scalar values of the form ${NAME} are replaced by the environment variable
// NAME before they are interpreted, exactly as KES does; policy allow/deny
// patterns are taken literally. Unknown keys are ignored.
//
// All functions are safe for concurrent use; a *Config is a plain value that
// callers must not mutate while other goroutines read it.
package config

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied by Parse to fields the file leaves unset.
const (
	DefaultAddress       = "0.0.0.0:7373"
	DefaultDataDir       = "./keyraft-data"
	DefaultRaftPort      = "7374"
	DefaultCacheAny      = 5 * time.Minute
	DefaultCacheUnused   = 30 * time.Second
	DefaultCacheOffline  = time.Duration(0)
	defaultAdvertiseHost = "127.0.0.1"
)

// Config is a parsed server configuration.
type Config struct {
	Address  string // listen address of the KES API, host:port
	Admin    string // admin identity; any non-identity value (e.g. "disabled") disables admin access
	TLS      TLS
	API      map[string]API    // keyed by exact route path, e.g. "/v1/ready"
	Policies map[string]Policy // keyed by policy name
	Cache    Cache
	Log      Log
	Keys     []string // key names created at startup if missing
	Keystore Keystore
	Cluster  Cluster
	Limits   Limits // Keyraft-only limits section
	// ProtectDeletion lists key name patterns (policy syntax: a trailing
	// '*' matches by prefix, others as path.Match) of keys that are
	// protected from deletion when they are created (Keyraft-only section
	// protection.deletion).
	ProtectDeletion []string
	// RecoveryWindow is how long a deleted key stays restorable before it
	// is purged (Keyraft-only protection.recovery_window; a Go duration or
	// whole days such as "7d"). 0, the default, deletes at once as KES does.
	RecoveryWindow time.Duration
	// Rotation lists scheduled key rotations (Keyraft-only section
	// rotation): keys whose names match a rule's pattern get a new version
	// when their newest is older than its period.
	Rotation []RotationRule
}

// RotationRule is one entry of the rotation section.
type RotationRule struct {
	Keys  string        // key name pattern (policy syntax)
	Every time.Duration // rotation period, a Go duration or whole days ("90d")
}

// MaxRecoveryWindow is the longest recovery window: AWS Secrets Manager's
// longest (30 days), so that its own window never ends before Keyraft's.
const MaxRecoveryWindow = 30 * 24 * time.Hour

// TLS is the tls section. Relative paths are relative to the working directory.
type TLS struct {
	Key      string // PEM private key file, possibly legacy-encrypted with Password
	Cert     string // PEM certificate (chain) file
	Password string // decrypts Key if it is a legacy encrypted PEM block
	Auth     string // "", "off" or "on" (lower-cased); see AuthMode
	CA       string // file or directory of PEM CA certificates, added to the system pool
	Proxy    Proxy
}

// Proxy is tls.proxy. It is parsed for compatibility only; KES HEAD ignores it too.
type Proxy struct {
	Identities []string
	Header     string // tls.proxy.header.cert
}

// API is api.<path>: per-route settings.
type API struct {
	Timeout  time.Duration // 0 = server default
	SkipAuth bool
}

// Policy is policy.<name>.
type Policy struct {
	Allow      []string
	Deny       []string
	Identities []string
}

// Cache is cache.expiry. Zero disables the corresponding rule. Parse applies
// the defaults (DefaultCacheAny, DefaultCacheUnused, DefaultCacheOffline) only
// to values the file leaves unset; an explicit 0 is kept and disables the rule
// (KES HEAD instead mixes up its defaults, see kes-api.md §7).
type Cache struct {
	Any     time.Duration
	Unused  time.Duration
	Offline time.Duration
}

// Log is the log section.
type Log struct {
	Error LogLevel
	Audit LogLevel
}

// Keystore holds exactly one non-nil backend after a successful Validate.
type Keystore struct {
	FS  *FS
	AWS *AWS
}

// FS is keystore.fs.
type FS struct {
	Path string
}

// AWS is keystore.aws.secretsmanager (or keystore.secretsmanager).
type AWS struct {
	Endpoint    string
	Region      string
	KMSKey      string
	Prefix      string // Keyraft extension: prepended to every secret name
	Credentials AWSCredentials
}

// AWSCredentials are static AWS credentials; all empty means the SDK's
// default credential chain. String and GoString redact them.
type AWSCredentials struct {
	AccessKey string
	SecretKey string
	Token     string
}

// String redacts the credentials so they never reach logs via %v.
func (c AWSCredentials) String() string {
	if c == (AWSCredentials{}) {
		return "{default chain}"
	}
	return "{static, redacted}"
}

// GoString redacts the credentials so they never reach logs via %#v.
func (c AWSCredentials) GoString() string { return "config.AWSCredentials" + c.String() }

// Cluster is the Keyraft-only cluster section.
type Cluster struct {
	NodeID       string   // Raft server ID; default: the host name
	DataDir      string   // Raft log, snapshots and state; default ./keyraft-data
	RaftAddress  string   // Raft listen address, host:port; default <address host>:7374
	Advertise    string   // Raft address peers dial; default RaftAddress, unspecified host → 127.0.0.1
	APIAdvertise string   // this node's KES API URL, https://host:port; default from Address
	Join         []string // API endpoints of existing members, normalised to https://host:port
	Bootstrap    bool     // bootstrap a new single-node cluster
	// IsolationTimeout bounds how long a node that hears no leader keeps
	// serving from its replicated state: after that it answers 503 and
	// reports not ready (it may have been removed, or be cut off from a
	// majority that deleted keys or revoked policies since). Default
	// DefaultIsolationTimeout.
	IsolationTimeout time.Duration
}

// DefaultIsolationTimeout is cluster.isolation_timeout's default: long
// enough to ride out leader elections and short network blips, short
// enough that a removed or partitioned node stops serving stale state soon.
const DefaultIsolationTimeout = 30 * time.Second

// Load reads the file at path, parses it (see Parse) and checks that the TLS
// files exist and are readable.
//
// Errors: the read error wrapped with "config:", any Parse error, or a
// *FieldError naming tls.key, tls.cert or tls.ca wrapping the os error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := c.checkFiles(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse parses YAML config data, substitutes ${ENV} references, applies
// defaults and validates everything that does not need the file system.
//
// Errors: YAML syntax and type errors wrapped with "config:", *EnvError for an
// unset variable, *FieldError for an invalid field, or errors wrapping
// ErrNoAdmin, ErrNoKeystore or ErrNotSupported.
func Parse(data []byte) (*Config, error) {
	var raw rawConfig
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := fromRaw(&raw)
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks c completely: every rule Parse enforces plus the existence
// and readability of tls.key, tls.cert and tls.ca. It does not apply defaults.
//
// Errors: as Parse and Load describe.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	return c.checkFiles()
}

// AdminEnabled reports whether Admin can match a client identity at all,
// i.e. whether it is 64 lower-case hex characters. "disabled" yields false.
func (c *Config) AdminEnabled() bool {
	if len(c.Admin) != 64 {
		return false
	}
	for i := 0; i < len(c.Admin); i++ {
		if ch := c.Admin[i]; (ch < '0' || ch > '9') && (ch < 'a' || ch > 'f') {
			return false
		}
	}
	return true
}

func present(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func fromRaw(raw *rawConfig) (*Config, error) {
	c := &Config{}
	var err error

	if v := deref(&raw.Version); present(v) {
		if v.Kind != yaml.ScalarNode || (v.Value != "v1" && v.Value != "") {
			return nil, fieldErrf("version", v.Line, "invalid config version %q", v.Value)
		}
	}
	if c.Address, err = str(&raw.Address, "address"); err != nil {
		return nil, err
	}
	if strings.TrimSpace(c.Address) == "" {
		c.Address = DefaultAddress
	}

	switch {
	case present(&raw.Root) && present(&raw.Admin.Identity):
		return nil, fieldErrf("root", deref(&raw.Root).Line, "cannot be combined with admin.identity")
	case present(&raw.Root):
		c.Admin, err = str(&raw.Root, "root")
	default:
		c.Admin, err = str(&raw.Admin.Identity, "admin.identity")
	}
	if err != nil {
		return nil, err
	}
	c.Admin = strings.TrimSpace(c.Admin)

	if err := tlsFromRaw(raw, &c.TLS); err != nil {
		return nil, err
	}
	if c.API, err = apiFromRaw(&raw.API); err != nil {
		return nil, err
	}
	if c.Policies, err = policiesFromRaw(&raw.Policy); err != nil {
		return nil, err
	}

	e := raw.Cache.Expiry
	if c.Cache.Any, err = duration(&e.Any, "cache.expiry.any", DefaultCacheAny); err != nil {
		return nil, err
	}
	if c.Cache.Unused, err = duration(&e.Unused, "cache.expiry.unused", DefaultCacheUnused); err != nil {
		return nil, err
	}
	if c.Cache.Offline, err = duration(&e.Offline, "cache.expiry.offline", DefaultCacheOffline); err != nil {
		return nil, err
	}

	if c.Log.Error, err = logLevel(&raw.Log.Error, "log.error"); err != nil {
		return nil, err
	}
	if c.Log.Audit, err = logLevel(&raw.Log.Audit, "log.audit"); err != nil {
		return nil, err
	}

	for i, k := range raw.Keys {
		name, err := str(&k.Name, fmt.Sprintf("keys[%d].name", i))
		if err != nil {
			return nil, err
		}
		c.Keys = append(c.Keys, name)
	}

	if c.Keystore, err = keystoreFromRaw(&raw.Keystore); err != nil {
		return nil, err
	}
	if c.Cluster, err = clusterFromRaw(raw, c.Address); err != nil {
		return nil, err
	}
	if c.Limits, err = limitsFromRaw(&raw.Limits); err != nil {
		return nil, err
	}
	for i := range raw.Protection.Deletion {
		p, err := str(&raw.Protection.Deletion[i], fmt.Sprintf("protection.deletion[%d]", i))
		if err != nil {
			return nil, err
		}
		if _, err := checkPattern(p); err != nil || p == "" {
			return nil, fmt.Errorf("config: protection.deletion[%d]: invalid key name pattern %q", i, p)
		}
		c.ProtectDeletion = append(c.ProtectDeletion, p)
	}
	if c.RecoveryWindow, err = days(&raw.Protection.RecoveryWindow, "protection.recovery_window"); err != nil {
		return nil, err
	}
	for i := range raw.Rotation {
		r := &raw.Rotation[i]
		path := fmt.Sprintf("rotation[%d]", i)
		keys, err := str(&r.Keys, path+".keys")
		if err != nil {
			return nil, err
		}
		if _, err := checkPattern(keys); err != nil || keys == "" {
			return nil, fmt.Errorf("config: %s.keys: invalid key name pattern %q", path, keys)
		}
		every, err := days(&r.Every, path+".every")
		if err != nil {
			return nil, err
		}
		if every < time.Second {
			return nil, fmt.Errorf("config: %s.every: a rotation period of at least 1s is required", path)
		}
		c.Rotation = append(c.Rotation, RotationRule{Keys: keys, Every: every})
	}
	if c.RecoveryWindow < 0 || c.RecoveryWindow > MaxRecoveryWindow {
		return nil, fieldErrf("protection.recovery_window", deref(&raw.Protection.RecoveryWindow).Line,
			"recovery window %v must be between 0 and 30 days", c.RecoveryWindow)
	}
	return c, nil
}

func tlsFromRaw(raw *rawConfig, t *TLS) error {
	r := &raw.TLS
	var err error
	if t.Key, err = str(&r.Key, "tls.key"); err != nil {
		return err
	}
	if t.Cert, err = str(&r.Cert, "tls.cert"); err != nil {
		return err
	}
	if t.Password, err = str(&r.Password, "tls.password"); err != nil {
		return err
	}
	if t.Auth, err = str(&r.Auth, "tls.auth"); err != nil {
		return err
	}
	t.Auth = strings.ToLower(strings.TrimSpace(t.Auth))
	if t.CA, err = str(&r.CA, "tls.ca"); err != nil {
		return err
	}
	if t.Proxy.Identities, err = strList(r.Proxy.Identities, "tls.proxy.identities", true); err != nil {
		return err
	}
	t.Proxy.Header, err = str(&r.Proxy.Header.Cert, "tls.proxy.header.cert")
	return err
}

func apiFromRaw(n *yaml.Node) (map[string]API, error) {
	pairs, err := mapping(n, "api")
	if err != nil || len(pairs) == 0 {
		return nil, err
	}
	out := make(map[string]API, len(pairs))
	for _, p := range pairs {
		path := "api." + p.key
		var r rawAPI
		if err := decodeInto(p.value, path, &r); err != nil {
			return nil, err
		}
		var a API
		if a.Timeout, err = duration(&r.Timeout, path+".timeout", 0); err != nil {
			return nil, err
		}
		if a.SkipAuth, err = boolean(&r.SkipAuth, path+".skip_auth"); err != nil {
			return nil, err
		}
		out[p.key] = a
	}
	return out, nil
}

func policiesFromRaw(n *yaml.Node) (map[string]Policy, error) {
	pairs, err := mapping(n, "policy")
	if err != nil || len(pairs) == 0 {
		return nil, err
	}
	out := make(map[string]Policy, len(pairs))
	for _, p := range pairs {
		path := "policy." + p.key
		var r rawPolicy
		if err := decodeInto(p.value, path, &r); err != nil {
			return nil, err
		}
		// An identity that is empty after substitution (e.g. an env.
		// variable set to "") is dropped, as KES 2023 does.
		ids, err := strList(r.Identities, path+".identities", true)
		if err != nil {
			return nil, err
		}
		out[p.key] = Policy{Allow: r.Allow, Deny: r.Deny, Identities: ids}
	}
	return out, nil
}

func logLevel(n *yaml.Node, path string) (LogLevel, error) {
	s, err := str(n, path)
	if err != nil {
		return LogLevel{}, err
	}
	l, err := ParseLogLevel(s)
	if err != nil {
		return LogLevel{}, fieldErr(path, deref(n).Line, err)
	}
	return l, nil
}

func keystoreFromRaw(n *yaml.Node) (Keystore, error) {
	var ks Keystore
	pairs, err := mapping(n, "keystore")
	if err != nil {
		return ks, err
	}
	var chosen []string
	for _, p := range pairs {
		path := "keystore." + p.key
		switch {
		case unsupportedKeystores[p.key]:
			return ks, fieldErr(path, p.line, ErrNotSupported)
		case p.key == "fs":
			var r rawFS
			if err := decodeInto(p.value, path, &r); err != nil {
				return ks, err
			}
			fsPath, err := str(&r.Path, path+".path")
			if err != nil {
				return ks, err
			}
			ks.FS = &FS{Path: fsPath}
		case p.key == "aws":
			var w rawAWSWrapper
			if err := decodeInto(p.value, path, &w); err != nil {
				return ks, err
			}
			if !present(&w.SecretsManager) {
				return ks, fieldErrf(path, p.line, "no secretsmanager section specified")
			}
			if ks.AWS, err = awsFromRaw(&w.SecretsManager, path+".secretsmanager"); err != nil {
				return ks, err
			}
		case p.key == "secretsmanager":
			if ks.AWS, err = awsFromRaw(p.value, path); err != nil {
				return ks, err
			}
		default:
			continue // unknown keys are ignored, as in KES
		}
		chosen = append(chosen, p.key)
	}
	if len(chosen) > 1 {
		return ks, fieldErrf("keystore", deref(n).Line, "more than one keystore specified (%s)", strings.Join(chosen, ", "))
	}
	return ks, nil
}

func awsFromRaw(n *yaml.Node, path string) (*AWS, error) {
	var r rawAWS
	if err := decodeInto(n, path, &r); err != nil {
		return nil, err
	}
	a := &AWS{}
	fields := []struct {
		n    *yaml.Node
		name string
		dst  *string
	}{
		{&r.Endpoint, "endpoint", &a.Endpoint},
		{&r.Region, "region", &a.Region},
		{&r.KMSKey, "kmskey", &a.KMSKey},
		{&r.Prefix, "prefix", &a.Prefix},
		{&r.Credentials.AccessKey, "credentials.accesskey", &a.Credentials.AccessKey},
		{&r.Credentials.SecretKey, "credentials.secretkey", &a.Credentials.SecretKey},
		{&r.Credentials.Token, "credentials.token", &a.Credentials.Token},
	}
	for _, f := range fields {
		s, err := str(f.n, path+"."+f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = s
	}
	if !present(&r.Endpoint) || strings.TrimSpace(a.Endpoint) == "" {
		return nil, fieldErrf(path+".endpoint", n.Line, "no endpoint specified")
	}
	if !present(&r.Region) || strings.TrimSpace(a.Region) == "" {
		return nil, fieldErrf(path+".region", n.Line, "no region specified")
	}
	return a, nil
}

// checkPattern checks a key name pattern (policy syntax: a trailing '*'
// matches by prefix, others as path.Match) for syntax errors; the bool is
// meaningless.
func checkPattern(p string) (bool, error) {
	return path.Match(strings.TrimSuffix(p, "*"), "")
}
