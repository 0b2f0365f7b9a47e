package api

import (
	"encoding/base64"
	"encoding/json"
)

// The hot routes (generate, decrypt) decode their bodies here. Bodies of
// the shape every KES client sends (an object of distinct, exactly named
// members whose values are base64 strings without escape sequences) are
// decoded directly, without reflection; anything else (other, repeated or
// differently cased members, escapes, null, other value types, malformed
// JSON) goes to encoding/json, so the result is the same for every input
// (FuzzHotBodies checks that).

// decodeGenerateBody decodes {"context": base64}. It returns false when
// the body is not valid JSON for it.
func decodeGenerateBody(b []byte) (context []byte, ok bool) {
	if fastB64Object(b, []string{"context"}, []*[]byte{&context}) {
		return context, true
	}
	var v struct {
		Context []byte `json:"context"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil, false
	}
	return v.Context, true
}

// decodeDecryptBody decodes {"ciphertext": base64, "context": base64}. It
// returns false when the body is not valid JSON for it.
func decodeDecryptBody(b []byte) (r decryptRequest, ok bool) {
	if fastB64Object(b, []string{"ciphertext", "context"}, []*[]byte{&r.Ciphertext, &r.Context}) {
		return r, true
	}
	r = decryptRequest{}
	if json.Unmarshal(b, &r) != nil {
		return decryptRequest{}, false
	}
	return r, true
}

// fastB64Object decodes the common shape (see decodeB64Object) and
// reports whether it did; on false dst may hold partial results.
func fastB64Object(b []byte, names []string, dst []*[]byte) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	var seen uint8
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		key, next, ok := plainString(b, i)
		if !ok {
			return false
		}
		field := -1
		for j, n := range names {
			if string(key) == n {
				field = j
			}
		}
		if field < 0 || seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		val, next, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return false
		}
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(val)))
		n, err := base64.StdEncoding.Decode(dec, val)
		if err != nil {
			return false
		}
		*dst[field] = dec[:n]
		i = skipSpace(b, next)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// plainString reads a JSON string at b[i] that has no escape sequences
// and only printable ASCII, returning its content (a slice of b, not a
// copy) and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
