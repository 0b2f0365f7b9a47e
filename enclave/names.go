package enclave

import "strings"

// ValidName reports whether s is a valid key, policy, identity or enclave
// name: 1 to 80 bytes of [0-9A-Za-z_-], '-' neither first nor last, and not
// the single name "_" (KES's validName).
func ValidName(s string) bool {
	if s == "" || len(s) > 80 || s == "_" {
		return false
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return false
		}
	}
	return true
}

// ValidPattern reports whether s is a valid listing pattern: empty, "*",
// or up to 80 bytes of the name alphabet with '*' allowed only as the last
// character (KES's validPattern).
func ValidPattern(s string) bool {
	if s == "" || s == "*" {
		return true
	}
	if len(s) > 80 {
		return false
	}
	body := strings.TrimSuffix(s, "*")
	for i := 0; i < len(body); i++ {
		if !nameChar(body[i]) {
			return false
		}
	}
	return true
}

func nameChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}
