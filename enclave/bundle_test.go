package enclave

import (
	"bytes"
	"testing"
)

func TestBundleRoundTrip(t *testing.T) {
	one := [][]byte{[]byte("Cg0KIAbc")}
	if b := encodeBundle(one); !bytes.Equal(b, one[0]) {
		t.Fatalf("one version's material = %q, want the value itself", b)
	}
	vals := [][]byte{[]byte("v1"), []byte(""), bytes.Repeat([]byte{7}, 300)}
	b := encodeBundle(vals)
	got, err := decodeBundle(b)
	if err != nil || len(got) != 3 || !bytes.Equal(got[0], vals[0]) || len(got[1]) != 0 || !bytes.Equal(got[2], vals[2]) {
		t.Fatalf("decode = %q, %v", got, err)
	}
	if !bytes.Equal(firstValue(b), []byte("v1")) {
		t.Fatal("firstValue")
	}
	for i := len(bundleMagic); i < len(b); i++ {
		if _, err := decodeBundle(b[:i]); err == nil {
			t.Fatalf("a bundle cut at %d decoded", i)
		}
	}
}

func FuzzDecodeBundle(f *testing.F) {
	f.Add(encodeBundle([][]byte{[]byte("a"), []byte("bc")}))
	f.Add([]byte("\x00KRB\x02\x01a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := decodeBundle(b)
		if err != nil {
			return
		}
		again, err := decodeBundle(encodeBundle(vals))
		if err != nil || len(again) != len(vals) {
			t.Fatalf("re-encoding %q: %q, %v", b, again, err)
		}
		for i := range vals {
			if !bytes.Equal(again[i], vals[i]) {
				t.Fatalf("re-encoding %q changed value %d", b, i)
			}
		}
	})
}

func TestVersionEntries(t *testing.T) {
	for _, tc := range []struct{ enclave, want string }{
		{DefaultEnclave, "keyraft.v.k.2"},
		{"t", "keyraft.e.t.k.v2"},
	} {
		got, err := versionEntry(tc.enclave, "k", 2)
		if err != nil || got != tc.want {
			t.Fatalf("versionEntry(%q) = %q, %v; want %q", tc.enclave, got, err, tc.want)
		}
		if ValidName(got) {
			t.Fatalf("%q is a valid key name: a listing would show it", got)
		}
	}
}
