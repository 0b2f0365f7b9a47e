package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/keyraft/keyraft/internal/kes"
)

// errInvalidBody is KES's answer to any request body that cannot be read or
// decoded, including one larger than the route's limit.
var errInvalidBody = kes.Error{Code: http.StatusBadRequest, Message: "invalid request body"}

// writeJSON sends v as the 200 response: Content-Type application/json, one
// JSON value followed by a newline, explicit Content-Length.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only for values json cannot encode: a programming error
		writeError(w, kes.Error{Code: http.StatusInternalServerError, Message: "failed to encode response"})
		return
	}
	writeRawJSON(w, append(b, '\n'))
}

// writeRawJSON sends b, a complete JSON document ending in a newline, as the
// 200 response.
func writeRawJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// writeEmpty sends an empty 200 response with Content-Length 0.
func writeEmpty(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// writeError sends err as a KES error response: its status and
// {"message":"..."} as JSON with an explicit Content-Length. err should be a
// kes.Error; anything else is sent as a 500 with a generic message (callers
// log such errors before).
func writeError(w http.ResponseWriter, err error) {
	var e kes.Error
	if !errors.As(err, &e) || e.Code < 400 || e.Code > 599 {
		e = kes.Error{Code: http.StatusInternalServerError, Message: "internal server error"}
	}
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{e.Message}) // a struct of one string always encodes
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Code)
	_, _ = w.Write(b)
}

// readBody reads the (already size-limited) request body. A body that
// cannot be read completely, e.g. because it exceeds the route's limit, is
// errInvalidBody. The caller owns the result and should clear it when it
// held secrets.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if n := r.ContentLength; n >= 0 {
		if n > maxBody {
			return nil, errInvalidBody
		}
		// Exact allocation: no intermediate buffers holding copies of secrets.
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			clear(b)
			return nil, errInvalidBody
		}
		return b, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		clear(b)
		return nil, errInvalidBody
	}
	return b, nil
}

// decodeBody reads the request body and decodes it as JSON into v. An
// empty, unreadable or malformed body is errInvalidBody. It returns the raw
// body so that callers can clear it when it held secrets.
func decodeBody(r *http.Request, v any) ([]byte, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return b, errInvalidBody
	}
	if err := json.Unmarshal(b, v); err != nil {
		return b, errInvalidBody
	}
	return b, nil
}
