package client

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Metrics is a server's metrics snapshot.
type Metrics struct {
	// Raw is the Prometheus text exposition as received.
	Raw []byte
	// Samples maps each sample name (histograms contribute name_bucket,
	// name_sum and name_count) to the sum of its values over all label sets.
	Samples map[string]float64
}

// Value returns Samples[name], 0 when absent.
func (m Metrics) Value(name string) float64 { return m.Samples[name] }

// parseMetrics parses the Prometheus text format (version 0.0.4): comment
// and blank lines are skipped; every other line is
// name[{labels}] value [timestamp].
func parseMetrics(raw []byte) (map[string]float64, error) {
	samples := map[string]float64{}
	for n, line := range bytes.Split(raw, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		name, rest, err := splitSample(s)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n+1, err)
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: want value [timestamp]", n+1)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n+1, err)
		}
		samples[name] += v
	}
	return samples, nil
}

// splitSample splits a sample line into its name and the text after the
// name and the optional label set, honouring quoted label values.
func splitSample(s string) (name, rest string, err error) {
	end := strings.IndexAny(s, "{ \t")
	if end <= 0 {
		return "", "", fmt.Errorf("invalid sample %q", s)
	}
	name = s[:end]
	if s[end] != '{' {
		return name, s[end:], nil
	}
	inQuote, escaped := false, false
	for i := end + 1; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return name, s[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("unterminated label set in %q", s)
}
