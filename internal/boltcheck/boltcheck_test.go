package boltcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sampleDB writes a bbolt file with nested, inline and multi-page buckets
// and returns its bytes.
func sampleDB(tb testing.TB, dir string) []byte {
	tb.Helper()
	path := filepath.Join(dir, "sample.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		big, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := big.Put(fmt.Appendf(nil, "key-%05d", i), []byte(strings.Repeat("v", i%300))); err != nil {
				return err
			}
		}
		if err := big.Put([]byte("huge"), make([]byte, 3*4096)); err != nil { // overflow pages
			return err
		}
		outer, err := tx.CreateBucket([]byte("outer"))
		if err != nil {
			return err
		}
		inner, err := outer.CreateBucket([]byte("inline"))
		if err != nil {
			return err
		}
		return inner.Put([]byte("a"), []byte("b"))
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestVerifyAcceptsBboltFiles(t *testing.T) {
	b := sampleDB(t, t.TempDir())
	if err := Verify(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejectsDamage(t *testing.T) {
	good := sampleDB(t, t.TempDir())
	cycle, err := os.ReadFile(filepath.Join("testdata", "cycle.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated":  good[:len(good)/2],
		"empty":      nil,
		"zeroed":     make([]byte, len(good)),
		"page cycle": cycle, // found by fsm's FuzzCheckSnapshot: bbolt's cursor loops forever on it
	} {
		if err := Verify(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// walkAll opens the file read-only with bbolt and visits every key of
// every bucket, turning faults into errors.
func walkAll(path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil // bbolt refusing the file is fine
	}
	defer db.Close()
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if c := b.Bucket(k); c != nil {
					return walk(c)
				}
			}
			return nil
		})
	}
	return db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	})
}

// FuzzVerify: Verify never panics or hangs, and a file it accepts can be
// opened and fully iterated by bbolt without faulting or looping.
func FuzzVerify(f *testing.F) {
	good := sampleDB(f, f.TempDir())
	f.Add(good)
	f.Add(good[:len(good)/2])
	if cycle, err := os.ReadFile(filepath.Join("testdata", "cycle.db")); err == nil {
		f.Add(cycle)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if Verify(b) != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- walkAll(path) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Verify accepted a file bbolt cannot read: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Verify accepted a file bbolt loops on")
		}
	})
}
