package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// rawConfig mirrors the YAML file. Every leaf that supports ${ENV}
// substitution is kept as a *yaml.Node and converted by the scalar helpers
// below, which know the field path and line for error messages. Unknown keys
// are ignored, as in KES.
type rawConfig struct {
	Version yaml.Node `yaml:"version"`
	Address yaml.Node `yaml:"address"`
	Root    yaml.Node `yaml:"root"`
	Admin   struct {
		Identity yaml.Node `yaml:"identity"`
	} `yaml:"admin"`
	TLS struct {
		Key      yaml.Node `yaml:"key"`
		Cert     yaml.Node `yaml:"cert"`
		Password yaml.Node `yaml:"password"`
		Auth     yaml.Node `yaml:"auth"`
		CA       yaml.Node `yaml:"ca"`
		Proxy    struct {
			Identities []yaml.Node `yaml:"identities"`
			Header     struct {
				Cert yaml.Node `yaml:"cert"`
			} `yaml:"header"`
		} `yaml:"proxy"`
	} `yaml:"tls"`
	API    yaml.Node `yaml:"api"`
	Policy yaml.Node `yaml:"policy"`
	Cache  struct {
		Expiry struct {
			Any     yaml.Node `yaml:"any"`
			Unused  yaml.Node `yaml:"unused"`
			Offline yaml.Node `yaml:"offline"`
		} `yaml:"expiry"`
	} `yaml:"cache"`
	Log struct {
		Error yaml.Node `yaml:"error"`
		Audit yaml.Node `yaml:"audit"`
	} `yaml:"log"`
	Keys []struct {
		Name yaml.Node `yaml:"name"`
	} `yaml:"keys"`
	Keystore yaml.Node `yaml:"keystore"`
	Cluster  struct {
		NodeID       yaml.Node   `yaml:"node_id"`
		DataDir      yaml.Node   `yaml:"data_dir"`
		RaftAddress  yaml.Node   `yaml:"raft_address"`
		Advertise    yaml.Node   `yaml:"advertise"`
		APIAdvertise yaml.Node   `yaml:"api_advertise"`
		Join         []yaml.Node `yaml:"join"`
		Bootstrap    yaml.Node   `yaml:"bootstrap"`
		Isolation    yaml.Node   `yaml:"isolation_timeout"`
	} `yaml:"cluster"`
	Limits     rawLimits `yaml:"limits"`
	Protection struct {
		Deletion       []yaml.Node `yaml:"deletion"`
		RecoveryWindow yaml.Node   `yaml:"recovery_window"`
	} `yaml:"protection"`
	Rotation []struct {
		Keys  yaml.Node `yaml:"keys"`
		Every yaml.Node `yaml:"every"`
	} `yaml:"rotation"`
}

type rawAPI struct {
	SkipAuth yaml.Node `yaml:"skip_auth"`
	Timeout  yaml.Node `yaml:"timeout"`
}

type rawPolicy struct {
	Allow      []string    `yaml:"allow"`
	Deny       []string    `yaml:"deny"`
	Identities []yaml.Node `yaml:"identities"`
}

type rawFS struct {
	Path yaml.Node `yaml:"path"`
}

type rawAWSWrapper struct {
	SecretsManager yaml.Node `yaml:"secretsmanager"`
}

type rawAWS struct {
	Endpoint    yaml.Node `yaml:"endpoint"`
	Region      yaml.Node `yaml:"region"`
	KMSKey      yaml.Node `yaml:"kmskey"`
	Prefix      yaml.Node `yaml:"prefix"`
	Credentials struct {
		AccessKey yaml.Node `yaml:"accesskey"`
		SecretKey yaml.Node `yaml:"secretkey"`
		Token     yaml.Node `yaml:"token"`
	} `yaml:"credentials"`
}

// unsupportedKeystores are KES keystores Keyraft rejects by name.
var unsupportedKeystores = map[string]bool{
	"vault": true, "fortanix": true, "gemalto": true, "gcp": true, "azure": true,
	"entrust": true, "kes": true, "encryptedfs": true, "credhub": true,
}

// deref follows YAML aliases and maps an absent node (nil, or the zero
// yaml.Node a struct field keeps when its key is missing) to nil.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n == nil || n.Kind == 0 {
		return nil
	}
	return n
}

// text returns the text of the scalar n after ${ENV} substitution. set is
// false if n is absent or a YAML null (and not an env reference).
//
// Substitution happens only when the whole trimmed scalar has the form
// ${NAME}; NAME is trimmed and must name an existing (possibly empty)
// environment variable, else an *EnvError is returned.
func text(n *yaml.Node, path string) (s string, set bool, err error) {
	n = deref(n)
	if n == nil {
		return "", false, nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", false, fieldErrf(path, n.Line, "expected a single value, not a list or mapping")
	}
	if v := strings.TrimSpace(n.Value); strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}") {
		name := strings.TrimSpace(v[2 : len(v)-1])
		val, ok := os.LookupEnv(name)
		if !ok {
			return "", false, &EnvError{Name: name, Line: n.Line}
		}
		return val, true, nil
	}
	if n.ShortTag() == "!!null" {
		return "", false, nil
	}
	return n.Value, true, nil
}

// str is text without the set flag: absent and null read as "".
func str(n *yaml.Node, path string) (string, error) {
	s, _, err := text(n, path)
	return s, err
}

// duration parses a Go duration ("5m", "30s"). An absent, null or empty value
// leaves def in place.
func duration(n *yaml.Node, path string, def time.Duration) (time.Duration, error) {
	s, set, err := text(n, path)
	if err != nil || !set || strings.TrimSpace(s) == "" {
		return def, err
	}
	d, perr := time.ParseDuration(strings.TrimSpace(s))
	if perr != nil {
		return 0, fieldErrf(path, deref(n).Line, "invalid duration %q", s)
	}
	return d, nil
}

// days is duration that also takes whole days ("7d").
func days(n *yaml.Node, path string) (time.Duration, error) {
	s, set, err := text(n, path)
	if err != nil || !set {
		return 0, err
	}
	if d, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		if v, perr := strconv.ParseUint(d, 10, 16); perr == nil {
			return time.Duration(v) * 24 * time.Hour, nil
		}
		return 0, fieldErrf(path, deref(n).Line, "invalid duration %q", s)
	}
	return duration(n, path, 0)
}

// boolean parses a YAML 1.1/1.2 boolean (true/false, yes/no, on/off in their
// usual spellings). An absent, null or empty value is false.
func boolean(n *yaml.Node, path string) (bool, error) {
	s, set, err := text(n, path)
	if err != nil || !set || strings.TrimSpace(s) == "" {
		return false, err
	}
	switch strings.TrimSpace(s) {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true, nil
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N":
		return false, nil
	}
	return false, fieldErrf(path, deref(n).Line, "invalid boolean %q", s)
}

// strList converts a list of scalars, dropping entries that are empty after
// substitution when dropEmpty is set.
func strList(nodes []yaml.Node, path string, dropEmpty bool) ([]string, error) {
	var out []string
	for i := range nodes {
		s, err := str(&nodes[i], fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		if dropEmpty && strings.TrimSpace(s) == "" {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// pair is one key/value entry of a YAML mapping.
type pair struct {
	key   string
	line  int
	value *yaml.Node
}

// mapping returns the entries of the mapping n in document order. An absent
// or null node yields no entries; duplicate keys are an error.
func mapping(n *yaml.Node, path string) ([]pair, error) {
	n = deref(n)
	if n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fieldErrf(path, n.Line, "expected a mapping")
	}
	seen := make(map[string]bool, len(n.Content)/2)
	pairs := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := deref(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			return nil, fieldErrf(path, k.Line, "mapping keys must be plain strings")
		}
		if seen[k.Value] {
			return nil, fieldErrf(path+"."+k.Value, k.Line, "defined multiple times")
		}
		seen[k.Value] = true
		pairs = append(pairs, pair{key: k.Value, line: k.Line, value: n.Content[i+1]})
	}
	return pairs, nil
}

// decodeInto decodes the node n into v, naming path in errors.
func decodeInto(n *yaml.Node, path string, v any) error {
	n = deref(n)
	if n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return nil
	}
	if err := n.Decode(v); err != nil {
		return fieldErr(path, n.Line, err)
	}
	return nil
}
