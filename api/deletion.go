package api

import (
	"net/http"
	"time"
)

// The recovery window's routes (Keyraft only; no KES release uses them):
// list the keys pending deletion, restore one, purge one now. Policies
// cover them like every other route.

// deletedKey is one entry of GET /v1/key/deleted/<pattern>.
type deletedKey struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	DeletedBy string    `json:"deleted_by,omitempty"`
	PurgeAt   time.Time `json:"purge_at"`
}

// deletedKeys lists the keys pending deletion whose names match the
// pattern, as a JSON array sorted by name.
func (s *Server) deletedKeys(w http.ResponseWriter, req *request) error {
	if _, err := listPrefix(req.resource); err != nil {
		return err
	}
	list, err := s.backend.DeletedKeys(req.enclave, req.resource)
	if err != nil {
		return err
	}
	out := make([]deletedKey, len(list))
	for i, d := range list {
		out[i] = deletedKey{Name: d.Name, DeletedAt: d.DeletedAt, DeletedBy: d.DeletedBy, PurgeAt: d.PurgeAt}
	}
	writeJSON(w, out)
	return nil
}

// restoreKey brings back a key pending deletion.
func (s *Server) restoreKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	if err := s.backend.RestoreKey(req.Context(), req.enclave, name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// purgeKey destroys a key pending deletion before its window ends.
func (s *Server) purgeKey(w http.ResponseWriter, req *request) error {
	name, err := keyName(req)
	if err != nil {
		return err
	}
	if err := s.backend.PurgeKey(req.Context(), req.enclave, name, req.identity); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}
