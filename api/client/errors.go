package client

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/keyraft/keyraft/internal/kes"
)

// Error is the error type of every non-2xx answer: the HTTP status code and
// the server's message. Error values are comparable; errors.Is matches equal
// code and message.
type Error = kes.Error

// The well-known KES errors (status + exact message), re-exported so that
// callers can write errors.Is(err, client.ErrKeyNotFound).
var (
	ErrNotAllowed       = kes.ErrNotAllowed
	ErrKeyNotFound      = kes.ErrKeyNotFound
	ErrKeyExists        = kes.ErrKeyExists
	ErrDecrypt          = kes.ErrDecrypt
	ErrPolicyNotFound   = kes.ErrPolicyNotFound
	ErrIdentityNotFound = kes.ErrIdentityNotFound
	ErrPolicyExists     = kes.ErrPolicyExists
	ErrIdentityExists   = kes.ErrIdentityExists
	ErrEnclaveExists    = kes.ErrEnclaveExists
	ErrEnclaveNotFound  = kes.ErrEnclaveNotFound
	ErrPartialWrite     = kes.ErrPartialWrite
)

// ConnError is returned when an endpoint could not be reached or the
// connection failed before a complete response arrived (including an
// attempt timeout, see WithAttemptTimeout). When every endpoint failed, the
// error of the last one tried is returned.
type ConnError struct {
	Endpoint string // the endpoint URL, e.g. "https://10.0.0.1:7373"
	Err      error  // the transport error
}

// Error returns "client: <endpoint>: <transport error>".
func (e *ConnError) Error() string { return "client: " + e.Endpoint + ": " + e.Err.Error() }

// Unwrap returns the transport error.
func (e *ConnError) Unwrap() error { return e.Err }

// maxResponseBody bounds every response body the client buffers.
const maxResponseBody = 32 << 20

// maxErrorBody bounds the part of an error body used as message.
const maxErrorBody = 1 << 20

// parseErrorResponse turns a non-2xx response into an Error. With a JSON
// content type the message is the "error" field if non-empty, else the
// "message" field; otherwise (or if the JSON does not decode) it is the
// trimmed body text. An empty message becomes the status text. The legacy
// messages are mapped to their current values.
func parseErrorResponse(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := ""
	if isJSON(resp.Header.Get("Content-Type")) {
		var body struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if err := json.Unmarshal(raw, &body); err == nil {
			msg = body.Message
			if body.Error != "" {
				msg = body.Error
			}
		} else {
			msg = string(raw)
		}
	} else {
		msg = string(raw)
	}
	msg = strings.TrimSpace(msg)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	err := kes.Error{Code: resp.StatusCode, Message: msg}
	switch err {
	case kes.ErrLegacyKeyExists:
		return kes.ErrKeyExists
	case kes.ErrLegacyNotAllowed:
		return kes.ErrNotAllowed
	}
	return err
}

// isJSON reports whether a Content-Type names JSON.
func isJSON(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json")
}

// isNDJSON reports whether a Content-Type names newline-delimited JSON.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-ndjson"
}
