// Package kes holds the KES v1 wire vocabulary shared by the server (api) and
// the client (api/client): the error values that clients such as MinIO match
// by exact HTTP status and message.
package kes

import "fmt"

// Error is an API error: an HTTP status code and the exact message KES sends.
// Error values are comparable, so errors.Is(err, ErrKeyNotFound) matches any
// Error with the same code and message.
type Error struct {
	Code    int
	Message string
}

// Error returns the message, as KES clients print it.
func (e Error) Error() string { return e.Message }

// NewError returns an Error with the given status code and message.
func NewError(code int, format string, args ...any) Error {
	return Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The canonical KES errors (status + message), spec §1.1.
var (
	ErrNotAllowed       = Error{403, "not authorized: insufficient permissions"}
	ErrKeyNotFound      = Error{404, "key does not exist"}
	ErrKeyExists        = Error{400, "key already exists"}
	ErrDecrypt          = Error{400, "decryption failed: ciphertext is not authentic"}
	ErrPolicyNotFound   = Error{404, "policy does not exist"}
	ErrIdentityNotFound = Error{404, "identity does not exist"}
	ErrPolicyExists     = Error{400, "policy already exists"}
	ErrIdentityExists   = Error{400, "identity already exists"}
	ErrEnclaveExists    = Error{400, "enclave already exists"}
	ErrEnclaveNotFound  = Error{404, "enclave does not exist"}
	ErrPartialWrite     = Error{503, "change committed but not replicated"}

	// ErrLegacyKeyExists and ErrLegacyNotAllowed are the pre-v0.19 messages
	// that clients still map to ErrKeyExists and ErrNotAllowed.
	ErrLegacyKeyExists  = Error{400, "key does already exist"}
	ErrLegacyNotAllowed = Error{403, "prohibited by policy"}
)
