package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/fs"
	"github.com/keyraft/keyraft/store/storetest"
)

func open(t testing.TB, dir string) *fs.Store {
	t.Helper()
	s, err := fs.Open(dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		dir := filepath.Join(t.TempDir(), "keys")
		s := open(t, dir)
		t.Cleanup(func() { assertNoTempFiles(t, dir) })
		return s
	})
}

// assertNoTempFiles fails if a Create left a temporary file behind.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("ReadDir: %v", err)
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %q left behind", e.Name())
		}
	}
}

// TestReadsKESDirectory checks that a directory in KES's layout (one file per
// key, file name = key name, content = stored value) lists and reads back
// unchanged.
func TestReadsKESDirectory(t *testing.T) {
	dir := t.TempDir()
	kesFiles := map[string][]byte{
		// A HEAD-style value: base64 of a protobuf KeyVersion (opaque here).
		"my-key": []byte("CiIKIBES4kX1V3W2ZQm6Zk8mX0QH6yPqg3cIUp1Bj8m0sY2mEAESIgogq7W3vQ6dY0hT1Uo0m8t0gnN8v0kGZtCpxY6m4n1b2DgQARoMCLmW0bIGEICS9MoBIgRyb290"),
		// A 2023-style legacy JSON value.
		"minio-default_key": []byte(`{"version":"v1","bytes":"2EmX2mGzKwzM0yTHmwNRl0uOT3DxxB0pEBnZkOIBMvk=","algorithm":"AES256-GCM_SHA256","created_at":"2023-06-01T10:00:00Z","created_by":"3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"}`),
		"0":                 []byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`),
		"_-___---_":         {0x00, 0xff, 0x10},
	}
	for name, v := range kesFiles {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dir)
	ctx := t.Context()

	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []string{"0", "_-___---_", "minio-default_key", "my-key"}
	if !slices.Equal(names, want) {
		t.Fatalf("List = %q, want %q", names, want)
	}
	for name, v := range kesFiles {
		got, err := s.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("Get(%q) = %q, want %q", name, got, v)
		}
	}
	if err := s.Create(ctx, "my-key", []byte("other")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create over a KES file = %v, want ErrExists", err)
	}
	// What we write is exactly what KES expects: the file holds the value bytes.
	if err := s.Create(ctx, "new-key", []byte("value bytes")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "new-key"))
	if err != nil || string(raw) != "value bytes" {
		t.Fatalf("file content = (%q, %v), want \"value bytes\"", raw, err)
	}
}

func TestStaleTempFilesRemovedAndIgnored(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".tmp-123456")
	if err := os.WriteFile(stale, []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary file after Open: Stat = %v, want not exist", err)
	}
	// A temporary file appearing later (another writer mid-Create) is ignored.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-789"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	names, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"key"}) {
		t.Fatalf("List = %q, want [key]", names)
	}
	if _, err := s.Get(t.Context(), ".tmp-789"); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("Get(.tmp-789) = %v, want ErrInvalidName", err)
	}
}

func TestNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s := open(t, dir)
	ctx := t.Context()

	invalid := []string{
		"", ".", "..", ".hidden", ".tmp-1", "a/b", "/abs", "../escape", "a\\b",
		"..\\escape", "a\x00b", strings.Repeat("k", 256),
	}
	for _, name := range invalid {
		if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	// Nothing was written inside or next to the directory.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if d == dir && len(entries) != 0 || d != dir && len(entries) != 1 {
			t.Fatalf("%s holds %d entries after invalid writes", d, len(entries))
		}
	}

	valid := []string{
		"keyraft.seal", "keyraft.enclave.tenant1.mykey", "a..b", "trailing.",
		"my-key", "_", "-lead", strings.Repeat("k", 255),
	}
	for _, name := range valid {
		v := []byte("value of " + name)
		if err := s.Create(ctx, name, v); err != nil {
			t.Fatalf("Create(%q): %v", name, err)
		}
		got, err := s.Get(ctx, name)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get(%q) = (%q, %v), want %q", name, got, err, v)
		}
	}
	names, err := s.List(ctx, "keyraft.")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"keyraft.enclave.tenant1.mykey", "keyraft.seal"}; !slices.Equal(names, want) {
		t.Fatalf("List(keyraft.) = %q, want %q", names, want)
	}
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "keys")
	s := open(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %o, want 700", perm)
	}
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %o, want 600", perm)
	}
}

func TestNonRegularEntriesAreNotEntries(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "subdir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("linked value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sub, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	ctx := t.Context()

	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"linked"}) {
		t.Fatalf("List = %q, want [linked]", names)
	}
	if v, err := s.Get(ctx, "linked"); err != nil || string(v) != "linked value" {
		t.Fatalf("Get(linked) = (%q, %v), want \"linked value\"", v, err)
	}
	for _, name := range []string{"subdir", "dirlink"} {
		if _, err := s.Get(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", name, err)
		}
		if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, store.ErrExists) {
			t.Errorf("Create(%q) = %v, want ErrExists", name, err)
		}
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Fatalf("subdirectory after Delete: (%v, %v), want it intact", fi, err)
	}
}

func TestDirectoryGoneIsUnreachable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s := open(t, dir)
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Status = %v, want ErrUnreachable", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Get = %v, want ErrUnreachable (not ErrNotFound)", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Delete = %v, want ErrUnreachable", err)
	}
	if err := s.Create(ctx, "k2", []byte("v")); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Create = %v, want ErrUnreachable", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("List = %v, want ErrUnreachable", err)
	}

	// A file in the directory's place is no better.
	if err := os.WriteFile(dir, []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Status with a file in place = %v, want ErrUnreachable", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Get with a file in place = %v, want ErrUnreachable", err)
	}
}

func TestOpenRejectsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(path); err == nil {
		t.Fatal("Open(file) succeeded, want an error")
	}
	if _, err := fs.Open(""); err == nil {
		t.Fatal(`Open("") succeeded, want an error`)
	}
}

func TestClosed(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := t.Context()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Create(ctx, "k", []byte("v")); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Create after Close = %v, want ErrUnreachable", err)
	}
	if _, err := s.Status(ctx); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Status after Close = %v, want ErrUnreachable", err)
	}
}

func TestEmptyValue(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := t.Context()
	if err := s.Create(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, "empty")
	if err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = (%q, %v), want empty value", v, err)
	}
}

func TestReopenSeesEntries(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Create(t.Context(), "persisted", []byte("v")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	v, err := open(t, dir).Get(t.Context(), "persisted")
	if err != nil || string(v) != "v" {
		t.Fatalf("Get after reopen = (%q, %v), want \"v\"", v, err)
	}
}

func BenchmarkGet(b *testing.B) {
	s := open(b, b.TempDir())
	ctx := b.Context()
	value := bytes.Repeat([]byte("k"), 200) // about the size of a stored KES key
	if err := s.Create(ctx, "bench-key", value); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "bench-key"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	s := open(b, b.TempDir())
	ctx := b.Context()
	value := bytes.Repeat([]byte("k"), 200)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Create(ctx, fmt.Sprintf("bench-key-%d", i), value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
