package config

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits is the Keyraft-only limits section: caps that bound what hostile
// or runaway clients can make a node hold. Zero means no limit (and, for
// MemoryLimit, the automatic choice described in docs/operations.md).
type Limits struct {
	// MaxConnections caps the concurrent TCP connections to the API port;
	// a connection beyond it is closed at once. limits.max_connections.
	MaxConnections int
	// MaxRequestsPerIdentity caps the requests one client identity may
	// have in progress on this node; one beyond it is answered 429 "too
	// many requests". limits.max_requests_per_identity.
	MaxRequestsPerIdentity int
	// MemoryLimit is the Go runtime's soft memory limit in bytes
	// (limits.memory, e.g. "1GiB", "512MB" or a byte count). It is ignored
	// when the GOMEMLIMIT environment variable is set. A negative value
	// ("off") sets no limit.
	MemoryLimit int64
	// ConnectionRate is how many new API connections per second a node
	// accepts (limits.connection_rate); the others wait in the kernel's
	// backlog. 0 (absent) means DefaultConnectionRate; -1 ("off") none.
	ConnectionRate int
}

// DefaultConnectionRate is limits.connection_rate when it is absent: new
// connections per second, each a TLS handshake. It is far above what KES
// clients need (they keep their connections) and bounds the memory of a
// connection storm (docs/operations.md).
const DefaultConnectionRate = 500

// rawLimits mirrors the limits section.
type rawLimits struct {
	MaxConnections         yaml.Node `yaml:"max_connections"`
	MaxRequestsPerIdentity yaml.Node `yaml:"max_requests_per_identity"`
	Memory                 yaml.Node `yaml:"memory"`
	ConnectionRate         yaml.Node `yaml:"connection_rate"`
}

func limitsFromRaw(r *rawLimits) (Limits, error) {
	var (
		l   Limits
		err error
	)
	if l.MaxConnections, err = count(&r.MaxConnections, "limits.max_connections"); err != nil {
		return l, err
	}
	if l.MaxRequestsPerIdentity, err = count(&r.MaxRequestsPerIdentity, "limits.max_requests_per_identity"); err != nil {
		return l, err
	}
	if l.ConnectionRate, err = rateOrOff(&r.ConnectionRate, "limits.connection_rate"); err != nil {
		return l, err
	}
	s, set, err := text(&r.Memory, "limits.memory")
	if err != nil || !set || strings.TrimSpace(s) == "" {
		return l, err
	}
	if l.MemoryLimit, err = ParseSize(s); err != nil {
		return l, fieldErr("limits.memory", deref(&r.Memory).Line, err)
	}
	return l, nil
}

// count parses a non-negative integer; absent, null or empty is 0.
func count(n *yaml.Node, path string) (int, error) {
	s, set, err := text(n, path)
	if err != nil || !set || strings.TrimSpace(s) == "" {
		return 0, err
	}
	v, perr := strconv.Atoi(strings.TrimSpace(s))
	if perr != nil || v < 0 {
		return 0, fieldErrf(path, deref(n).Line, "invalid count %q: must be a non-negative integer", s)
	}
	return v, nil
}

// rateOrOff parses a positive integer or "off" (-1); absent, null or
// empty is 0 (the default applies).
func rateOrOff(n *yaml.Node, path string) (int, error) {
	s, set, err := text(n, path)
	if err != nil || !set || strings.TrimSpace(s) == "" {
		return 0, err
	}
	if strings.EqualFold(strings.TrimSpace(s), "off") {
		return -1, nil
	}
	v, perr := strconv.Atoi(strings.TrimSpace(s))
	if perr != nil || v <= 0 {
		return 0, fieldErrf(path, deref(n).Line, "invalid rate %q: must be a positive integer or off", s)
	}
	return v, nil
}

// sizeUnits are the suffixes ParseSize accepts, longest first.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a byte size: an integer with an optional unit suffix
// (B, KB, MB, GB, TB decimal; KiB, MiB, GiB, TiB binary), e.g. "512MiB",
// or "off" for -1 (no limit). Errors describe the malformed value; sizes
// that overflow int64 are errors.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	orig := s
	if strings.EqualFold(s, "off") {
		return -1, nil
	}
	factor := int64(1)
	for _, u := range sizeUnits {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, factor = strings.TrimSpace(v), u.factor
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q", orig)
	}
	if v > (1<<63-1)/factor {
		return 0, fmt.Errorf("size %q is too large", orig)
	}
	return v * factor, nil
}
