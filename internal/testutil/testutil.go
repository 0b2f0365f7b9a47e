// Package testutil has helpers shared by Keyraft's tests: polling with a
// deadline instead of sleeping, and scanning directories for secrets.
package testutil

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Eventually polls cond every 10ms until it returns true, failing the test
// with msg if it has not by the deadline.
func Eventually(t testing.TB, within time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("not within %v: %s", within, msg)
		case <-tick.C:
		}
	}
}

// ScanForSecret walks dir and reports every file that contains secret in
// raw, hex or base64 (standard and URL, with and without padding) form.
// It returns how many files it read so a caller can check it scanned
// something.
func ScanForSecret(t testing.TB, dir string, secret []byte) (files int, hits []string) {
	t.Helper()
	forms := [][]byte{
		secret,
		[]byte(hex.EncodeToString(secret)),
		[]byte(base64.StdEncoding.EncodeToString(secret)),
		[]byte(base64.RawStdEncoding.EncodeToString(secret)),
		[]byte(base64.URLEncoding.EncodeToString(secret)),
		[]byte(base64.RawURLEncoding.EncodeToString(secret)),
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, f := range forms {
			if bytes.Contains(b, f) {
				hits = append(hits, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	return files, hits
}

// Listen listens on a loopback TCP port the OS chooses, failing the test
// if it cannot.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
