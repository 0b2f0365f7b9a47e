package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyraft/keyraft/enclave"
)

// FuzzDecodeRPC: cluster RPC bodies arrive from peers over mutual TLS.
// decodeRPC never panics, answers what it rejects with 400, and whatever
// it accepts survives a JSON round trip.
func FuzzDecodeRPC(f *testing.F) {
	for _, s := range []string{
		`{"kind":1,"enclave":"default","name":"k","identity":"i"}`,
		`{"ID":"n1","RaftAddr":"a:1","Identity":"x","readmit":true}`,
		`{"ID":"n2"}`, `null`, `[]`, `{"key":"!!"}`, ``,
	} {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(1), []byte(s))
		f.Add(uint8(2), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		var v any
		switch which % 3 {
		case 0:
			v = new(enclave.Op)
		case 1:
			v = new(joinRPC)
		default:
			v = new(struct{ ID string })
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if !decodeRPC(rec, req, v) {
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("%q rejected with %d", body, rec.Code)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%q decoded to %#v, which does not encode: %v", body, v, err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%q: own encoding %q does not decode: %v", body, b, err)
		}
	})
}
