package api

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
)

// Keyraft's key versions (no KES release uses these routes): rotate a
// key, set its minimum decryption version, re-encrypt a ciphertext under
// the newest version. Policies cover them like every other route.

// versionJSON is one version in a describe answer.
type versionJSON struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Retired   bool      `json:"retired,omitempty"`
	Destroyed bool      `json:"destroyed,omitempty"`
}

// versionsJSON lists a rotated key's versions; nil for a key never
// rotated, so its describe answer is KES's.
func versionsJSON(vs []enclave.VersionDetail) []versionJSON {
	if len(vs) < 2 {
		return nil
	}
	out := make([]versionJSON, len(vs))
	for i, v := range vs {
		out[i] = versionJSON{Version: v.Version, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy, Retired: v.Retired, Destroyed: v.Destroyed}
	}
	return out
}

// versionField is a request's optional key version: a JSON number, or a
// string holding one ("" and absent: 0), as KES clients send "version".
type versionField int

// UnmarshalJSON accepts 2, "2", "" and null.
func (v *versionField) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return errInvalidBody
	}
	*v = versionField(n)
	return nil
}

// noteVersion records, for the audit log, the key version a ciphertext
// names (only versions ≥ 2 carry one).
func (r *request) noteVersion(ciphertext []byte) {
	if n := crypto.CiphertextVersion(ciphertext); n >= 2 {
		r.version = n
	}
}

// rotateKey adds a version to a key: {"version": n} in the answer.
func (s *Server) rotateKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	n, err := s.backend.RotateKey(req.Context(), req.enclave, name, req.identity)
	if err != nil {
		return err
	}
	req.version = n
	writeJSON(w, struct {
		Version int `json:"version"`
	}{n})
	return nil
}

// setMinVersion sets a key's minimum decryption version from
// {"min_version": n}.
func (s *Server) setMinVersion(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body struct {
		MinVersion versionField `json:"min_version"`
	}
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	if body.MinVersion < 1 {
		return kes.Error{Code: http.StatusBadRequest, Message: "min_version must be 1 or more"}
	}
	if err := s.backend.SetMinVersion(req.Context(), req.enclave, name, int(body.MinVersion), req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// rewrap re-encrypts {"ciphertext","context"} under the key's newest
// version: {"ciphertext"} in the answer.
func (s *Server) rewrap(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	var body decryptRequest
	if _, err := decodeBody(req.Request, &body); err != nil {
		return err
	}
	ct, err := s.backend.Rewrap(req.Context(), req.enclave, name, body.Ciphertext, body.Context)
	if err != nil {
		return err
	}
	req.noteVersion(ct)
	writeRawJSON(w, b64Object(b64Field{"ciphertext", ct}))
	return nil
}

// destroyVersion deletes the material of the retired version named by the
// query parameter "version".
func (s *Server) destroyVersion(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(req.URL.Query().Get("version"))
	if err != nil || n < 1 {
		return kes.Error{Code: http.StatusBadRequest, Message: "query parameter 'version' must be a version number"}
	}
	if err := s.backend.DestroyVersion(req.Context(), req.enclave, name, n, req.identity); err != nil {
		return err
	}
	req.version = n
	writeEmpty(w)
	return nil
}
