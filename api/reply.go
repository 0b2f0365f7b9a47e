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

// initialBodyBuffer is the first allocation for a request body: most KES
// request bodies (a context, a ciphertext) fit into it.
const initialBodyBuffer = 1 << 10

// readBody reads the (already size-limited) request body. Memory grows with
// the bytes that arrive, never with the Content-Length the client announces:
// the buffer starts at initialBodyBuffer bytes (or the announced length, if
// smaller) and doubles as bytes arrive, up to the announced length or
// maxBody, so a request that announces 1 MB and sends nothing holds 1 KiB.
// Outgrown buffers are cleared, so no copies of secrets are left behind.
//
// A body that cannot be read completely, e.g. because it exceeds the route's
// limit or does not arrive before the route's read deadline, is
// errInvalidBody. The caller owns the result and should clear it when it
// held secrets.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	limit := int64(maxBody)
	if n := r.ContentLength; n >= 0 {
		if n > maxBody {
			return nil, errInvalidBody
		}
		if n == 0 {
			return []byte{}, nil
		}
		limit = n
	}
	b := make([]byte, 0, min(limit, initialBodyBuffer))
	for {
		if len(b) == cap(b) {
			if int64(len(b)) >= limit {
				// Content-Length bytes read: anything more is an error the
				// server reports; for an unknown length, MaxBytesReader's
				// error does. Read once more to see EOF or that error.
				var one [1]byte
				n, err := r.Body.Read(one[:])
				if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
					clear(b)
					return nil, errInvalidBody
				}
				if err != nil {
					return b, nil
				}
				continue
			}
			nb := make([]byte, len(b), min(2*int64(cap(b)), limit))
			copy(nb, b)
			clear(b)
			b = nb
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			clear(b)
			return nil, errInvalidBody
		}
	}
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
