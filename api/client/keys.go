package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// KeyInfo describes a key (GET /v1/key/describe/<name>).
type KeyInfo struct {
	Name      string    `json:"name"`
	Algorithm string    `json:"algorithm,omitempty"` // "AES256" or "ChaCha20"
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"` // identity of the creator
	// Protected is set when the key is protected from deletion (Keyraft).
	Protected bool `json:"deletion_protected,omitempty"`
	// Versions lists a rotated key's versions, version 1 first, and
	// MinVersion the lowest that may decrypt (Keyraft; empty for a key
	// never rotated).
	Versions   []KeyVersion `json:"versions,omitempty"`
	MinVersion int          `json:"min_version,omitempty"`
	// RotateEverySeconds and NextRotation describe the key's rotation
	// schedule (Keyraft's rotation config section), if one applies.
	RotateEverySeconds int64     `json:"rotate_every_seconds,omitempty"`
	NextRotation       time.Time `json:"next_rotation,omitzero"`
}

// KeyVersion is one version of a rotated key (Keyraft).
type KeyVersion struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Retired   bool      `json:"retired,omitempty"`
	Destroyed bool      `json:"destroyed,omitempty"`
}

// DEK is a data encryption key: the plaintext key and the same key encrypted
// under a master key. Callers should clear Plaintext when done.
type DEK struct {
	Plaintext  []byte
	Ciphertext []byte
}

// DecryptItem is one ciphertext of a bulk decryption.
type DecryptItem struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context,omitempty"`
}

// CreateKey creates a key with a fresh random secret (POST
// /v1/key/create/<name>). It returns ErrKeyExists if the key exists and
// ErrNotAllowed if the policy forbids it. It fails over to another endpoint
// only when the request never reached a server.
func (c *Client) CreateKey(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: "POST", path: resource("/v1/key/create/", name), enclave: true}, nil)
}

// ImportKey creates a key from 32 bytes of key material (POST
// /v1/key/import/<name>). cipher is "AES256" or "ChaCha20" (the server also
// accepts "AES256-GCM_SHA256" and "XCHACHA20-POLY1305"); "" sends "AES256",
// as the KES SDK does. It returns ErrKeyExists if the key exists; the server
// answers 406 for an unknown cipher or a wrong key size. Retried like CreateKey.
func (c *Client) ImportKey(ctx context.Context, name string, key []byte, cipher string) error {
	if cipher == "" {
		cipher = "AES256"
	}
	body, err := jsonBody(struct {
		Key    []byte `json:"key"`
		Cipher string `json:"cipher"`
	}{key, cipher})
	if err != nil {
		return err
	}
	defer clear(body)
	return c.call(ctx, &request{method: "POST", path: resource("/v1/key/import/", name), body: body, enclave: true}, nil)
}

// DescribeKey returns metadata about a key; ErrKeyNotFound if it does not exist.
func (c *Client) DescribeKey(ctx context.Context, name string) (KeyInfo, error) {
	var info KeyInfo
	err := c.call(ctx, &request{method: "GET", path: resource("/v1/key/describe/", name), enclave: true, idempotent: true}, &info)
	return info, err
}

// DeleteKey deletes a key (DELETE /v1/key/delete/<name>); ErrKeyNotFound if it
// does not exist. Retried like CreateKey.
func (c *Client) DeleteKey(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: "DELETE", path: resource("/v1/key/delete/", name), enclave: true}, nil)
}

// SetKeyProtection protects the key name from deletion, or removes the
// protection (PUT /v1/key/protect/<name>, Keyraft only; admins only). It
// returns ErrKeyNotFound if the key does not exist.
func (c *Client) SetKeyProtection(ctx context.Context, name string, protected bool) error {
	body, err := jsonBody(struct {
		Protected bool `json:"protected"`
	}{protected})
	if err != nil {
		return err
	}
	return c.call(ctx, &request{method: "PUT", path: resource("/v1/key/protect/", name), body: body, enclave: true}, nil)
}

// GenerateKey returns a new 32-byte data key and its encryption under the key
// name, bound to the associated data cryptoCtx (may be nil) (POST
// /v1/key/generate/<name>). It returns ErrKeyNotFound if the key does not exist.
func (c *Client) GenerateKey(ctx context.Context, name string, cryptoCtx []byte) (DEK, error) {
	body, err := jsonBody(struct {
		Context []byte `json:"context,omitempty"`
	}{cryptoCtx})
	if err != nil {
		return DEK{}, err
	}
	var resp struct {
		Plaintext  []byte `json:"plaintext"`
		Ciphertext []byte `json:"ciphertext"`
	}
	err = c.call(ctx, &request{method: "POST", path: resource("/v1/key/generate/", name), body: body, enclave: true, idempotent: true}, &resp)
	if err != nil {
		return DEK{}, err
	}
	return DEK{Plaintext: resp.Plaintext, Ciphertext: resp.Ciphertext}, nil
}

// Encrypt encrypts plaintext with the key name, bound to cryptoCtx (POST
// /v1/key/encrypt/<name>). It returns ErrKeyNotFound if the key does not
// exist. The request body holding the plaintext is cleared afterwards.
func (c *Client) Encrypt(ctx context.Context, name string, plaintext, cryptoCtx []byte) ([]byte, error) {
	body, err := jsonBody(struct {
		Plaintext []byte `json:"plaintext"`
		Context   []byte `json:"context,omitempty"`
	}{plaintext, cryptoCtx})
	if err != nil {
		return nil, err
	}
	defer clear(body)
	var resp struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	err = c.call(ctx, &request{method: "POST", path: resource("/v1/key/encrypt/", name), body: body, enclave: true, idempotent: true}, &resp)
	return resp.Ciphertext, err
}

// Decrypt decrypts a ciphertext produced by Encrypt or GenerateKey under the
// key name with the same cryptoCtx (POST /v1/key/decrypt/<name>). It returns
// ErrDecrypt when the ciphertext or context is not authentic and
// ErrKeyNotFound if the key does not exist.
func (c *Client) Decrypt(ctx context.Context, name string, ciphertext, cryptoCtx []byte) ([]byte, error) {
	body, err := ciphertextBody(ciphertext, cryptoCtx)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Plaintext []byte `json:"plaintext"`
	}
	err = c.call(ctx, &request{method: "POST", path: resource("/v1/key/decrypt/", name), body: body, enclave: true, idempotent: true}, &resp)
	return resp.Plaintext, err
}

// BulkDecrypt decrypts several ciphertexts under the key name in one request
// (POST /v1/key/bulk/decrypt/<name>, body a JSON array of {ciphertext,
// context}, response an array of {plaintext}). The plaintexts are returned in
// input order. The first failing item fails the whole call (ErrDecrypt); a
// response with a different number of items is an error.
func (c *Client) BulkDecrypt(ctx context.Context, name string, items []DecryptItem) ([][]byte, error) {
	if items == nil {
		items = []DecryptItem{}
	}
	body, err := jsonBody(items)
	if err != nil {
		return nil, err
	}
	var resp []struct {
		Plaintext []byte `json:"plaintext"`
	}
	err = c.call(ctx, &request{method: "POST", path: resource("/v1/key/bulk/decrypt/", name), body: body, enclave: true, idempotent: true}, &resp)
	if err != nil {
		return nil, err
	}
	if len(resp) != len(items) {
		for _, r := range resp {
			clear(r.Plaintext)
		}
		return nil, errCount(len(items), len(resp))
	}
	out := make([][]byte, len(resp))
	for i, r := range resp {
		out[i] = r.Plaintext
	}
	return out, nil
}

// HMAC returns the HMAC-SHA256 of message under the key's HMAC key (PUT
// /v1/key/hmac/<name>). It returns ErrKeyNotFound if the key does not exist;
// a key without an HMAC key yields a 409 Error.
func (c *Client) HMAC(ctx context.Context, name string, message []byte) ([]byte, error) {
	if message == nil {
		message = []byte{}
	}
	body, err := jsonBody(struct {
		Message []byte `json:"message"`
	}{message})
	if err != nil {
		return nil, err
	}
	defer clear(body)
	var resp struct {
		HMAC []byte `json:"hmac"`
	}
	err = c.call(ctx, &request{method: "PUT", path: resource("/v1/key/hmac/", name), body: body, enclave: true, idempotent: true}, &resp)
	return resp.HMAC, err
}

// ListKeys returns one page of key names starting with prefix ("" = all) and
// the server's continue_at marker ("" when this is the last page).
// continueAt is "" for the first page, else the marker returned by the
// previous call; it is sent as the query parameter "continue".
func (c *Client) ListKeys(ctx context.Context, prefix, continueAt string) ([]string, string, error) {
	return c.listPage(ctx, "/v1/key/list/", prefix, continueAt)
}

// ListAllKeys returns all key names starting with prefix, following pages
// (see the package documentation for the server requirement). On error it
// returns the names collected so far together with the error.
func (c *Client) ListAllKeys(ctx context.Context, prefix string) ([]string, error) {
	return listAll(ctx, prefix, c.ListKeys)
}

// DeletedKey is a key pending deletion within Keyraft's recovery window.
type DeletedKey struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	DeletedBy string    `json:"deleted_by,omitempty"`
	PurgeAt   time.Time `json:"purge_at"`
}

// DeletedKeys lists the keys pending deletion whose names match pattern
// ("" for all) (GET /v1/key/deleted/<pattern>, Keyraft only).
func (c *Client) DeletedKeys(ctx context.Context, pattern string) ([]DeletedKey, error) {
	var out []DeletedKey
	err := c.call(ctx, &request{method: "GET", path: resource("/v1/key/deleted/", pattern), enclave: true, idempotent: true}, &out)
	return out, err
}

// RestoreKey brings back a key pending deletion, with its old material
// (PUT /v1/key/restore/<name>, Keyraft only). It returns ErrKeyNotFound if
// the key is not pending deletion.
func (c *Client) RestoreKey(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: "PUT", path: resource("/v1/key/restore/", name), enclave: true}, nil)
}

// PurgeKey destroys a key pending deletion before its recovery window
// ends (DELETE /v1/key/purge/<name>, Keyraft only). It returns
// ErrKeyNotFound if the key is not pending deletion.
func (c *Client) PurgeKey(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: "DELETE", path: resource("/v1/key/purge/", name), enclave: true}, nil)
}

// RotateKey adds a version to the key name and returns its number:
// generate and encrypt use it from then on, on every node (PUT
// /v1/key/rotate/<name>, Keyraft only). It returns ErrKeyNotFound if the
// key does not exist.
func (c *Client) RotateKey(ctx context.Context, name string) (int, error) {
	var resp struct {
		Version int `json:"version"`
	}
	err := c.call(ctx, &request{method: "PUT", path: resource("/v1/key/rotate/", name), enclave: true}, &resp)
	return resp.Version, err
}

// SetMinVersion sets the lowest version of the key name that may decrypt
// (PUT /v1/key/min-version/<name>, Keyraft only); 1 allows every version.
func (c *Client) SetMinVersion(ctx context.Context, name string, minVersion int) error {
	body, err := jsonBody(struct {
		MinVersion int `json:"min_version"`
	}{minVersion})
	if err != nil {
		return err
	}
	return c.call(ctx, &request{method: "PUT", path: resource("/v1/key/min-version/", name), body: body, enclave: true, idempotent: true}, nil)
}

// Rewrap re-encrypts a ciphertext of any version of the key name under its
// newest version, on the server (PUT /v1/key/rewrap/<name>, Keyraft only).
// It returns ErrDecrypt when the ciphertext or context is not authentic.
func (c *Client) Rewrap(ctx context.Context, name string, ciphertext, cryptoCtx []byte) ([]byte, error) {
	body, err := ciphertextBody(ciphertext, cryptoCtx)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	err = c.call(ctx, &request{method: "PUT", path: resource("/v1/key/rewrap/", name), body: body, enclave: true, idempotent: true}, &resp)
	return resp.Ciphertext, err
}

// DestroyVersion deletes the material of a retired version (below the
// key's minimum decryption version) of the key name for good (DELETE
// /v1/key/version/<name>?version=<n>, Keyraft only).
func (c *Client) DestroyVersion(ctx context.Context, name string, version int) error {
	q := url.Values{"version": {strconv.Itoa(version)}}
	return c.call(ctx, &request{method: "DELETE", path: resource("/v1/key/version/", name), query: q, enclave: true}, nil)
}

// ciphertextBody is the body of decrypt and rewrap: a ciphertext and its
// associated data.
func ciphertextBody(ciphertext, cryptoCtx []byte) ([]byte, error) {
	return jsonBody(struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context,omitempty"`
	}{ciphertext, cryptoCtx})
}
