package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// validate enforces every rule that does not touch the file system.
func (c *Config) validate() error {
	if c.Admin == "" {
		return fmt.Errorf("config: %w", ErrNoAdmin)
	}
	if c.TLS.Key == "" {
		return fieldErrf("tls.key", 0, "no private key specified")
	}
	if c.TLS.Cert == "" {
		return fieldErrf("tls.cert", 0, "no certificate specified")
	}
	switch c.TLS.Auth {
	case "", "off", "on":
	default:
		return fieldErrf("tls.auth", 0, "invalid auth mode %q: must be on or off", c.TLS.Auth)
	}
	for _, p := range c.TLS.Proxy.Identities {
		if p == c.Admin {
			return fieldErrf("tls.proxy.identities", 0, "identity %q is the admin identity", p)
		}
	}
	if err := checkHostPort("address", c.Address); err != nil {
		return err
	}
	for _, path := range sortedKeys(c.API) {
		if c.API[path].Timeout < 0 {
			return fieldErrf("api."+path+".timeout", 0, "negative timeout %v", c.API[path].Timeout)
		}
	}
	if err := c.validatePolicies(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"any", c.Cache.Any}, {"unused", c.Cache.Unused}, {"offline", c.Cache.Offline}} {
		if d.v < 0 {
			return fieldErrf("cache.expiry."+d.name, 0, "negative duration %v", d.v)
		}
	}
	seen := make(map[string]bool, len(c.Keys))
	for _, k := range c.Keys {
		if !validName(k) {
			return fieldErrf("keys", 0, "invalid key name %q", k)
		}
		if seen[k] {
			return fieldErrf("keys", 0, "key %q is defined multiple times", k)
		}
		seen[k] = true
	}
	if err := c.Keystore.validate(); err != nil {
		return err
	}
	return c.Cluster.validate()
}

func (c *Config) validatePolicies() error {
	owner := make(map[string]string)
	proxies := make(map[string]bool, len(c.TLS.Proxy.Identities))
	for _, p := range c.TLS.Proxy.Identities {
		proxies[p] = true
	}
	for _, name := range sortedKeys(c.Policies) {
		path := "policy." + name
		if !validName(name) {
			return fieldErrf(path, 0, "invalid policy name %q", name)
		}
		for _, id := range c.Policies[name].Identities {
			switch {
			case !validName(id):
				return fieldErrf(path+".identities", 0, "invalid identity %q", id)
			case id == c.Admin:
				return fieldErrf(path+".identities", 0, "identity %q is the admin identity", id)
			case proxies[id]:
				return fieldErrf(path+".identities", 0, "identity %q is a TLS proxy", id)
			case owner[id] != "":
				return fieldErrf(path+".identities", 0, "identity %q is already assigned to policy %q; cannot assign it to policy %q too", id, owner[id], name)
			}
			owner[id] = name
		}
	}
	return nil
}

func (k Keystore) validate() error {
	switch {
	case k.FS == nil && k.AWS == nil:
		return fmt.Errorf("config: %w", ErrNoKeystore)
	case k.FS != nil && k.AWS != nil:
		return fieldErrf("keystore", 0, "more than one keystore specified (fs, aws)")
	case k.FS != nil && strings.TrimSpace(k.FS.Path) == "":
		return fieldErrf("keystore.fs.path", 0, "no path specified")
	case k.AWS != nil && strings.TrimSpace(k.AWS.Endpoint) == "":
		return fieldErrf("keystore.aws.secretsmanager.endpoint", 0, "no endpoint specified")
	case k.AWS != nil && strings.TrimSpace(k.AWS.Region) == "":
		return fieldErrf("keystore.aws.secretsmanager.region", 0, "no region specified")
	}
	return nil
}

// checkFiles verifies that the TLS files can be opened and read.
func (c *Config) checkFiles() error {
	for _, f := range []struct{ path, name string }{{c.TLS.Key, "tls.key"}, {c.TLS.Cert, "tls.cert"}} {
		if err := readable(f.path); err != nil {
			return fieldErr(f.name, 0, err)
		}
	}
	if c.TLS.CA != "" {
		if _, err := os.Stat(c.TLS.CA); err != nil {
			return fieldErr("tls.ca", 0, err)
		}
	}
	return nil
}

// readable opens path and reads one byte, so that directories and files
// without read permission fail here rather than at server start.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// validName reports whether s is a valid KES key, policy or identity name:
// 1..80 bytes of [0-9A-Za-z_-], '-' neither first nor last, not "_".
func validName(s string) bool {
	if s == "" || len(s) > 80 || s == "_" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
