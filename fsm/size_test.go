package fsm

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keyraft/keyraft/internal/crypto"
)

// TestBytesPerKey measures what one sealed key record costs: in memory
// (the FSM's map) and in the bbolt file. The record is realistic: a KES
// stored key (as Keyraft creates it) sealed with AES-256-GCM (nonce and
// tag added), an identity as creator, an AWS-style version ID. The bounds
// catch a regression that would make a 100,000-key cluster expensive.
func TestBytesPerKey(t *testing.T) {
	const n = 2000
	kv, err := crypto.NewKeyVersion(crypto.AES256, "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	value, err := crypto.EncodeKeyVersion(kv)
	kv.Zero()
	if err != nil {
		t.Fatal(err)
	}
	sealed := make([]byte, len(value)+12+16)
	rand.Read(sealed)
	rec := func(i int) KeyRecord {
		return KeyRecord{
			Name: fmt.Sprintf("minio-bucket-key-%06d", i), Algorithm: "AES256",
			CreatedAt: time.Now().UTC(), CreatedBy: kv.CreatedBy, Sealed: sealed,
			LoadedAt: time.Now().UTC(), Version: "a1b2c3d4-5678-90ab-cdef-1234567890ab",
		}
	}
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := applyCmd(f, 1, PutKey{Enclave: "default", Key: rec(-1)}); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	h0, s0 := heap(), size()
	for i := range n {
		r := rec(i)
		r.Sealed = append([]byte(nil), sealed...) // each record owns its bytes, as decoded ones do
		if err := applyCmd(f, uint64(i+2), PutKey{Enclave: "default", Key: r}); err != nil {
			t.Fatal(err)
		}
	}
	mem := float64(heap()-h0) / n
	file := float64(size()-s0) / n
	var inuse int
	if err := f.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketKeys).Stats()
		inuse = st.LeafInuse + st.BranchInuse
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	disk := float64(inuse) / (n + 1)
	enc, _ := json.Marshal(rec(0))
	t.Logf("one key: stored value %d B, sealed %d B, JSON record %d B; per key: %.0f B in memory, %.0f B of bbolt pages in use, file growth %.0f B (free pages included)",
		len(value), len(sealed), len(enc), mem, disk, file)
	if f.KeyCount() != n+1 {
		t.Fatalf("KeyCount = %d, want %d", f.KeyCount(), n+1)
	}
	if mem > 1024 || disk > 1024 || file > 4096 {
		t.Fatalf("a sealed key costs %.0f B in memory, %.0f B in bbolt pages, %.0f B of file; want at most 1, 1 and 4 KiB", mem, disk, file)
	}
}

func applyCmd(f *FSM, index uint64, c Command) error {
	data, err := Encode(c)
	if err != nil {
		return err
	}
	res, fatal := f.Apply(index, data)
	if fatal != nil {
		return fatal
	}
	return res
}
