package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
)

// Example shows MinIO's startup sequence: generate a data key with the
// default key and create the key when it does not exist yet.
func Example() {
	// A stand-in KES server; in real use this is a Keyraft cluster.
	var mu sync.Mutex
	keys := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if name, ok := strings.CutPrefix(r.URL.Path, "/v1/key/create/"); ok {
			keys[name] = true
			return
		}
		if name, ok := strings.CutPrefix(r.URL.Path, "/v1/key/generate/"); ok {
			if !keys[name] {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintln(w, `{"message":"key does not exist"}`)
				return
			}
			json.NewEncoder(w).Encode(map[string][]byte{"plaintext": make([]byte, 32), "ciphertext": make([]byte, 76)})
		}
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	apiKey, _ := identity.ParseAPIKey("kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc")
	c, err := client.New([]string{srv.URL}, client.WithAPIKey(apiKey), client.WithRootCAs(roots))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	dek, err := c.GenerateKey(ctx, "minio-default", []byte(`{}`))
	if errors.Is(err, client.ErrKeyNotFound) {
		fmt.Println("creating the default key")
		if err = c.CreateKey(ctx, "minio-default"); err == nil || errors.Is(err, client.ErrKeyExists) {
			dek, err = c.GenerateKey(ctx, "minio-default", []byte(`{}`))
		}
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("identity:", apiKey.Identity())
	fmt.Println("data key:", len(dek.Plaintext), "bytes; ciphertext:", len(dek.Ciphertext), "bytes")
	// Output:
	// creating the default key
	// identity: 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22
	// data key: 32 bytes; ciphertext: 76 bytes
}
