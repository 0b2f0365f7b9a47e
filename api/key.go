package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// maxBulkCiphertexts is the most ciphertexts one bulk decrypt may carry.
const maxBulkCiphertexts = 1000

func invalidKeyName(name string) error { return enclave.InvalidKeyName(name) }

func invalidPattern(pattern string) error {
	return kes.NewError(http.StatusBadRequest, "listing pattern '%s' is empty, too long or is invalid", pattern)
}

// keyName returns the request's key name or the 400 for an invalid one.
func keyName(req *request) (string, error) {
	if !enclave.ValidName(req.resource) {
		return "", invalidKeyName(req.resource)
	}
	return req.resource, nil
}

// listPrefix turns a listing pattern into a name prefix: "" and "*" list
// everything, "abc*" and "abc" list names starting with "abc". An invalid
// pattern is a 400.
func listPrefix(pattern string) (string, error) {
	if !enclave.ValidPattern(pattern) {
		return "", invalidPattern(pattern)
	}
	return strings.TrimSuffix(pattern, "*"), nil
}

// listResponse is the shape of the key and policy listings.
type listResponse struct {
	Names      []string `json:"names"`
	ContinueAt string   `json:"continue_at,omitempty"`
}

func (s *Server) createKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	if err := s.backend.CreateKey(req.Context(), req.enclave, name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) importKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body struct {
		Key    []byte `json:"key"`
		Cipher string `json:"cipher"`
	}
	raw, err := decodeBody(req.Request, &body)
	defer clear(raw)
	defer clear(body.Key)
	if err != nil {
		return kes.Error{Code: http.StatusBadRequest, Message: "invalid import key request body"}
	}
	if err := s.backend.ImportKey(req.Context(), req.enclave, name, body.Key, body.Cipher, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func (s *Server) describeKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	info, err := s.backend.DescribeKey(req.Context(), req.enclave, name)
	if err != nil {
		return err
	}
	writeJSON(w, struct {
		Name      string    `json:"name"`
		Algorithm string    `json:"algorithm,omitempty"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by,omitempty"`
		Protected bool      `json:"deletion_protected,omitempty"` // Keyraft only
		// Keyraft's key versions, for a rotated key only (absent
		// otherwise, so KES clients decode it unchanged).
		Versions   []versionJSON `json:"versions,omitempty"`
		MinVersion int           `json:"min_version,omitempty"`
		// The rotation schedule (Keyraft's rotation section), if one
		// applies: the period in seconds and the next rotation.
		RotateEvery  int64     `json:"rotate_every_seconds,omitempty"`
		NextRotation time.Time `json:"next_rotation,omitzero"`
	}{info.Name, info.Algorithm, info.CreatedAt, info.CreatedBy, info.Protected, versionsJSON(info.Versions), info.MinVersion,
		int64(info.RotateEvery / time.Second), info.NextRotation})
	return nil
}

// protectKey sets or removes a key's deletion protection (Keyraft only):
// the body {"protected": bool} is optional, an empty body protects.
func (s *Server) protectKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	raw, err := readBody(req.Request)
	if err != nil {
		return err
	}
	body := struct {
		Protected *bool `json:"protected"`
	}{}
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		return errInvalidBody
	}
	protected := body.Protected == nil || *body.Protected
	if err := s.backend.SetKeyProtection(req.Context(), req.enclave, name, protected, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// listKeys lists key names by pattern. The query parameter "continue" (or
// "continue_at") resumes a listing where the previous page's continue_at
// left off.
func (s *Server) listKeys(w http.ResponseWriter, req *request) error {
	prefix, err := listPrefix(req.resource)
	if err != nil {
		return err
	}
	var continueAt string
	if req.URL.RawQuery != "" {
		q := req.URL.Query()
		if continueAt = q.Get("continue"); continueAt == "" {
			continueAt = q.Get("continue_at")
		}
	}
	names, next, err := s.backend.ListKeys(req.Context(), req.enclave, prefix, continueAt)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, listResponse{Names: names, ContinueAt: next})
	return nil
}

func (s *Server) deleteKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	if err := s.backend.DeleteKey(req.Context(), req.enclave, name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// generateKey returns a new data key. The body {"context":"<b64>"} is
// optional: an empty body means no associated data.
func (s *Server) generateKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	raw, err := readBody(req.Request)
	if err != nil {
		return err
	}
	var assoc []byte
	if len(raw) > 0 {
		var ok bool
		if assoc, ok = decodeGenerateBody(raw); !ok {
			return errInvalidBody
		}
	}
	plaintext, ciphertext, err := s.backend.GenerateKey(req.Context(), req.enclave, name, assoc)
	if err != nil {
		return err
	}
	req.noteVersion(ciphertext)
	defer clear(plaintext)
	out := b64Object(b64Field{"plaintext", plaintext}, b64Field{"ciphertext", ciphertext})
	defer clear(out)
	writeRawJSON(w, out)
	return nil
}

func (s *Server) encrypt(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body struct {
		Plaintext []byte `json:"plaintext"`
		Context   []byte `json:"context"`
	}
	raw, err := decodeBody(req.Request, &body)
	defer clear(raw)
	defer clear(body.Plaintext)
	if err != nil {
		return err
	}
	ciphertext, err := s.backend.Encrypt(req.Context(), req.enclave, name, body.Plaintext, body.Context)
	if err != nil {
		return err
	}
	req.noteVersion(ciphertext)
	writeRawJSON(w, b64Object(b64Field{"ciphertext", ciphertext}))
	return nil
}

// decryptRequest is one ciphertext to decrypt; "version" is ignored.
type decryptRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context"`
}

func (s *Server) decrypt(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	raw, err := readBody(req.Request)
	if err != nil {
		return err
	}
	body, ok := decodeDecryptBody(raw)
	if len(raw) == 0 || !ok {
		return errInvalidBody
	}
	req.noteVersion(body.Ciphertext)
	plaintext, err := s.backend.Decrypt(req.Context(), req.enclave, name, body.Ciphertext, body.Context)
	if err != nil {
		return err
	}
	defer clear(plaintext)
	out := b64Object(b64Field{"plaintext", plaintext})
	defer clear(out)
	writeRawJSON(w, out)
	return nil
}

// bulkDecrypt decrypts up to maxBulkCiphertexts ciphertexts with one key
// (the 2023 API): a JSON array of {"ciphertext","context"} in, a JSON array
// of {"plaintext"} out, in order. The first failure fails the whole call.
func (s *Server) bulkDecrypt(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body []decryptRequest
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	if len(body) > maxBulkCiphertexts {
		return kes.Error{Code: http.StatusBadRequest, Message: "too many ciphertexts"}
	}
	plaintexts := make([][]byte, 0, len(body))
	defer func() {
		for _, p := range plaintexts {
			clear(p)
		}
	}()
	size := 2 // "[]"
	for _, ct := range body {
		p, err := s.backend.Decrypt(req.Context(), req.enclave, name, ct.Ciphertext, ct.Context)
		if err != nil {
			return err
		}
		plaintexts = append(plaintexts, p)
		size += len(`{"plaintext":""},`) + base64.StdEncoding.EncodedLen(len(p))
	}
	out := make([]byte, 0, size+1)
	defer clear(out)
	out = append(out, '[')
	for i, p := range plaintexts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"plaintext":"`...)
		out = base64.StdEncoding.AppendEncode(out, p)
		out = append(out, `"}`...)
	}
	out = append(out, "]\n"...)
	writeRawJSON(w, out)
	return nil
}

func (s *Server) hmac(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body struct {
		Message []byte       `json:"message"`
		Version versionField `json:"version"` // Keyraft: the version's HMAC key
	}
	raw, err := decodeBody(req.Request, &body)
	defer clear(raw)
	defer clear(body.Message)
	if err != nil {
		return err
	}
	req.version = int(body.Version)
	sum, err := s.backend.HMAC(req.Context(), req.enclave, name, body.Message, int(body.Version))
	if err != nil {
		return err
	}
	writeRawJSON(w, b64Object(b64Field{"hmac", sum}))
	return nil
}

// b64Field is one base64-encoded field of a JSON object built by b64Object.
type b64Field struct {
	name  string // must not need JSON escaping
	value []byte
}

// b64Object encodes a JSON object of base64 byte fields followed by a
// newline. It is built in one exact allocation, without the json package's
// pooled buffers, so that the caller can clear the only copy of secret
// values.
func b64Object(fields ...b64Field) []byte {
	size := 3 // "{}\n"
	for _, f := range fields {
		size += len(f.name) + len(`"":"",`) + base64.StdEncoding.EncodedLen(len(f.value))
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, f := range fields {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, f.name...)
		out = append(out, `":"`...)
		out = base64.StdEncoding.AppendEncode(out, f.value)
		out = append(out, '"')
	}
	return append(out, "}\n"...)
}
