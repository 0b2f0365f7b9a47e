package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: config files come from operators (and ${ENV} values from the
// environment). Parse never panics; a config it accepts validates or fails
// with an error, and ParseSize never panics either.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("limits:\n  max_connections: 10\n  max_requests_per_identity: 4\n  memory: 512MiB\n  connection_rate: 300\n"))
	f.Add([]byte("cluster:\n  join: [a:1, 'https://b:2']\n  isolation_timeout: 5s\n"))
	f.Add([]byte("address: ${NOPE}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil {
			_ = c.Validate()
		}
		_, _ = ParseSize(string(data))
	})
}
