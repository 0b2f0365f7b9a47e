package enclave

import (
	"strings"
	"testing"
)

// FuzzMatch: policy patterns come from config files and /v1/policy/write.
// Match never panics; a pattern without glob metacharacters matches only
// the identical path; "prefix*" matches every path with that prefix; and
// Verify denies whatever a deny pattern matches.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/v1/key/create/*", "/v1/key/create/my-key"},
		{"/v1/key/*/my-*", "/v1/key/generate/my-key"},
		{"/v1/key/[a-", "/v1/key/a"},
		{`/v1/\`, "/v1/"},
		{"*", ""},
		{"/v1/status", "/v1/status"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := Match(pattern, path)
		if !strings.ContainsAny(pattern, `*?[\`) && got != (pattern != "" && pattern == path) {
			t.Fatalf("Match(%q, %q) = %v for a literal pattern", pattern, path, got)
		}
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(prefix, `*?[\`) && got != strings.HasPrefix(path, prefix) {
			t.Fatalf("Match(%q, %q) = %v for a prefix pattern", pattern, path, got)
		}
		p := &Policy{Allow: []string{"*", pattern}, Deny: []string{pattern}}
		if got && p.Verify(path) {
			t.Fatalf("deny %q did not reject %q", pattern, path)
		}
	})
}
