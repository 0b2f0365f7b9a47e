package enclave

import (
	"path"
	"strings"
)

// Match reports whether a policy pattern matches a request path.
//
// A pattern that ends in '*' and has no other glob metacharacter matches
// every path that starts with the pattern minus the '*' (the star may span
// '/', as in KES since 2023-10). Any other pattern is matched as path.Match
// does (KES up to 2023-05), so "/v1/key/*/my-*" keeps working. An empty
// pattern never matches. Match is pure and safe for concurrent use.
func Match(pattern, p string) bool {
	if pattern == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(prefix, `*?[\`) {
		return strings.HasPrefix(p, prefix)
	}
	if !strings.ContainsAny(pattern, `*?[\`) {
		return pattern == p
	}
	ok, err := path.Match(pattern, p)
	return err == nil && ok
}

// Verify evaluates the policy against a request path: any matching deny
// pattern rejects, otherwise any matching allow pattern accepts, otherwise
// the request is rejected (default deny). An empty policy rejects
// everything.
func (p *Policy) Verify(requestPath string) bool {
	for _, d := range p.Deny {
		if Match(d, requestPath) {
			return false
		}
	}
	for _, a := range p.Allow {
		if Match(a, requestPath) {
			return true
		}
	}
	return false
}
