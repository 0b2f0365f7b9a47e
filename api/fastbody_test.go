package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

var hotBodySeeds = []string{
	`{"context":"YnVja2V0L29iamVjdA=="}`,
	`{"ciphertext":"AAECAw==","context":"YnVja2V0"}`,
	` { "context" : "" , "ciphertext" : "AAEC" } `,
	`{}`, `{"context":null}`, `{"Context":"AAEC"}`, `{"context":"AA\u0045C"}`,
	`{"context":"AAEC","context":"AAED"}`, `{"context":"AAE"}`, `{"context":"AAEC"} x`,
	`{"context":1}`, `[]`, `{"other":"x"}`, `{"context":"AAEC",}`, `{"context":"\u00e9"}`,
	"{\"context\":\"AA\nEC\"}", `{"ciphertext":"AAEC"`, ``, `null`,
}

// FuzzHotBodies checks that the hot routes' body decoding gives exactly
// encoding/json's result for every input: the same acceptance and the
// same field values.
func FuzzHotBodies(f *testing.F) {
	for _, s := range hotBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var g struct {
			Context []byte `json:"context"`
		}
		gErr := json.Unmarshal(b, &g)
		ctx, ok := decodeGenerateBody(b)
		if ok != (gErr == nil) || (ok && !bytes.Equal(ctx, g.Context)) || (ok && (ctx == nil) != (g.Context == nil)) {
			t.Fatalf("generate body %q: fast %q %v, encoding/json %q %v", b, ctx, ok, g.Context, gErr)
		}
		var d decryptRequest
		dErr := json.Unmarshal(b, &d)
		r, ok := decodeDecryptBody(b)
		if ok != (dErr == nil) || (ok && (!bytes.Equal(r.Ciphertext, d.Ciphertext) || !bytes.Equal(r.Context, d.Context) ||
			(r.Ciphertext == nil) != (d.Ciphertext == nil) || (r.Context == nil) != (d.Context == nil))) {
			t.Fatalf("decrypt body %q: fast %+v %v, encoding/json %+v %v", b, r, ok, d, dErr)
		}
	})
}

// TestHotBodiesTakeTheFastPath: the shapes KES clients send are decoded
// without encoding/json.
func TestHotBodiesTakeTheFastPath(t *testing.T) {
	var c, ct []byte
	if !fastB64Object([]byte(`{"context":"YnVja2V0"}`), []string{"context"}, []*[]byte{&c}) || string(c) != "bucket" {
		t.Fatalf("generate body: %q", c)
	}
	if !fastB64Object([]byte(`{"ciphertext":"AAEC","context":"YnVja2V0"}`), []string{"ciphertext", "context"}, []*[]byte{&ct, &c}) ||
		!bytes.Equal(ct, []byte{0, 1, 2}) {
		t.Fatalf("decrypt body: %q %q", ct, c)
	}
}

func BenchmarkDecryptBody(b *testing.B) {
	body := []byte(`{"ciphertext":"eyJhZWFkIjoiQUVTLTI1Ni1HQ00tSE1BQy1TSEEtMjU2IiwiaXYiOiJ0bHF1dDhJNGFRcnRtVG5aTVBBcGtBPT0iLCJub25jZSI6IlVmb2JzcGd0dXRwd2w0M2MiLCJieXRlcyI6ImtpL0RqNDdjVmNpK2NScVNoNGpSZ3BkYUltMHBoNkhrbEUwN0xqTEtmZmNpRUh4dG1wNzMrOVBadGtNT0lJZ0MifQ==","context":"eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0="}`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := decodeDecryptBody(body); !ok {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var r decryptRequest
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
