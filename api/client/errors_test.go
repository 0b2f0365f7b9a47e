package client

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/keyraft/keyraft/internal/kes"
)

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name        string
		code        int
		contentType string
		body        string
		want        Error
		is          error // optional errors.Is target
	}{
		{"json message", 404, "application/json", "{\"message\":\"key does not exist\"\n}\n", kes.ErrKeyNotFound, ErrKeyNotFound},
		{"json charset", 400, "application/json; charset=utf-8", `{"message":"decryption failed: ciphertext is not authentic"}`, kes.ErrDecrypt, ErrDecrypt},
		{"json error field wins", 403, "application/json", `{"message":"ignored","error":"not authorized: insufficient permissions"}`, kes.ErrNotAllowed, ErrNotAllowed},
		{"json error only", 400, "application/json", `{"error":"key already exists"}`, kes.ErrKeyExists, ErrKeyExists},
		{"text body", 404, "text/plain; charset=utf-8", "404 page not found\n", Error{Code: 404, Message: "404 page not found"}, nil},
		{"no content type", 400, "", "  invalid request body  ", Error{Code: 400, Message: "invalid request body"}, nil},
		{"legacy exists json", 400, "application/json", `{"message":"key does already exist"}`, kes.ErrKeyExists, ErrKeyExists},
		{"legacy exists text", 400, "text/plain", "key does already exist", kes.ErrKeyExists, ErrKeyExists},
		{"legacy not allowed", 403, "application/json", `{"message":"prohibited by policy"}`, kes.ErrNotAllowed, ErrNotAllowed},
		{"legacy message, other code", 404, "application/json", `{"message":"prohibited by policy"}`, Error{Code: 404, Message: "prohibited by policy"}, nil},
		{"broken json", 406, "application/json", `{"message":`, Error{Code: 406, Message: `{"message":`}, nil},
		{"empty body", 409, "application/json", ``, Error{Code: 409, Message: "Conflict"}, nil},
		{"2023 unescaped", 400, "application/json; charset=utf-8", `{"message":"invalid argument: name is empty"}`, Error{Code: 400, Message: "invalid argument: name is empty"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				} else {
					w.Header()["Content-Type"] = nil // suppress sniffing
				}
				w.WriteHeader(tc.code)
				w.Write([]byte(tc.body))
			})
			_, err := newClient(t, []string{srv.URL}).DescribeKey(context.Background(), "k")
			var got Error
			if !errors.As(err, &got) {
				t.Fatalf("err = %v (%T), want an Error", err, err)
			}
			if got != tc.want {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if tc.is == nil && errors.Is(err, ErrKeyNotFound) {
				t.Fatal("unexpected match with ErrKeyNotFound")
			}
		})
	}
}

// TestMinIOStartupPattern is the generate → 404 → create sequence MinIO
// runs at startup, which relies on exact error equality.
func TestMinIOStartupPattern(t *testing.T) {
	var created atomic.Bool
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/key/generate/minio":
			if !created.Load() {
				fail(w, 404, "key does not exist")
				return
			}
			replyJSON(w, map[string][]byte{"plaintext": make([]byte, 32), "ciphertext": {1}})
		case "/v1/key/create/minio":
			if created.Load() {
				fail(w, 400, "key already exists")
				return
			}
			created.Store(true)
		}
	})
	c := newClient(t, []string{srv.URL})
	ctx := context.Background()
	if _, err := c.GenerateKey(ctx, "minio", []byte("{}")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("first generate: %v", err)
	}
	if err := c.CreateKey(ctx, "minio"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateKey(ctx, "minio"); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second create: %v", err)
	}
	dek, err := c.GenerateKey(ctx, "minio", []byte("{}"))
	if err != nil || len(dek.Plaintext) != 32 {
		t.Fatalf("generate: %v %d", err, len(dek.Plaintext))
	}
}
