//go:build unix

package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/fs"
)

// fileID is what a version is made of, read directly with stat.
type fileID struct {
	mtime time.Time
	inode uint64
	size  int64
}

func statID(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileID{fi.ModTime(), uint64(fi.Sys().(*syscall.Stat_t).Ino), fi.Size()}
}

// checkVersion checks that name holds want, that GetVersion and
// ListVersions agree on its version, and returns that version.
func checkVersion(t *testing.T, s *fs.Store, name string, want []byte) string {
	t.Helper()
	ctx := t.Context()
	got, version, err := s.GetVersion(ctx, name)
	if err != nil || string(got) != string(want) {
		t.Fatalf("GetVersion(%q) = (%q, %v), want %q", name, got, err, want)
	}
	if version == "" {
		t.Fatalf("GetVersion(%q) returned an empty version", name)
	}
	entries, err := s.ListVersions(ctx, name)
	if err != nil {
		t.Fatalf("ListVersions(%q): %v", name, err)
	}
	if len(entries) != 1 || entries[0] != (store.Entry{Name: name, Version: version}) {
		t.Fatalf("ListVersions(%q) = %v, want [{%s %s}] as GetVersion reported", name, entries, name, version)
	}
	return version
}

// rewriteInPlace writes value into path's existing file (same inode) and
// moves its modification time one second past the old one: mtime has the
// filesystem's granularity, and two writes within one tick would keep it,
// while an operator's later rewrite does not.
func rewriteInPlace(t *testing.T, path string, value []byte) {
	t.Helper()
	before := statID(t, path)
	if err := os.WriteFile(path, value, 0o600); err != nil {
		t.Fatal(err)
	}
	later := before.mtime.Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

// TestVersionChangesWhenReplaced replaces an entry's file behind the
// Store's back the ways an operator would, and checks that the version
// changes and the new value is read.
func TestVersionChangesWhenReplaced(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	path := filepath.Join(dir, "k")

	v1 := []byte("first value")
	created, err := s.CreateVersion(t.Context(), "k", v1)
	if err != nil {
		t.Fatal(err)
	}
	ver1 := checkVersion(t, s, "k", v1)
	if created != ver1 {
		t.Fatalf("CreateVersion = %q, GetVersion = %q", created, ver1)
	}
	id1 := statID(t, path)

	// A new file renamed over the entry (how editors and config tools
	// replace files): a new inode, and the same size as before.
	v2 := []byte("other value")
	tmp := filepath.Join(dir, ".operator-tmp")
	if err := os.WriteFile(tmp, v2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	id2 := statID(t, path)
	if id2.inode == id1.inode {
		t.Fatalf("renamed file kept inode %d", id1.inode)
	}
	ver2 := checkVersion(t, s, "k", v2)
	if ver2 == ver1 {
		t.Fatalf("version %q unchanged after a rename over the entry", ver1)
	}

	// Written in place with a value of the same size: only the
	// modification time tells.
	v3 := []byte("third value")
	rewriteInPlace(t, path, v3)
	id3 := statID(t, path)
	if id3.inode != id2.inode || id3.size != id2.size {
		t.Fatalf("in-place write changed inode %d->%d or size %d->%d", id2.inode, id3.inode, id2.size, id3.size)
	}
	ver3 := checkVersion(t, s, "k", v3)
	if ver3 == ver2 {
		t.Fatalf("version %q unchanged after an in-place write", ver2)
	}

	// Written in place within one mtime tick (forced here): the size tells.
	v4 := []byte("a longer fourth value")
	if err := os.WriteFile(path, v4, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Time{}, id3.mtime); err != nil {
		t.Fatal(err)
	}
	if id4 := statID(t, path); !id4.mtime.Equal(id3.mtime) || id4.inode != id3.inode {
		t.Fatalf("stat after write+Chtimes = %+v, want mtime and inode of %+v", id4, id3)
	}
	ver4 := checkVersion(t, s, "k", v4)
	if ver4 == ver3 {
		t.Fatalf("version %q unchanged after an in-place write of another size", ver3)
	}

	// Nothing else changes a version: not reading, not reopening the
	// directory, not another entry's creation.
	if _, err := s.CreateVersion(t.Context(), "other", v1); err != nil {
		t.Fatal(err)
	}
	if got := checkVersion(t, open(t, dir), "k", v4); got != ver4 {
		t.Fatalf("version after reopen = %q, want %q", got, ver4)
	}
}

// TestVersionOfSymlink: a symbolic link's version is its target's, in
// GetVersion and ListVersions alike, and changes with the target.
func TestVersionOfSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("linked value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	ver1 := checkVersion(t, s, "linked", []byte("linked value"))
	tmp := target + ".new"
	if err := os.WriteFile(tmp, []byte("new linked value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	if ver2 := checkVersion(t, s, "linked", []byte("new linked value")); ver2 == ver1 {
		t.Fatalf("version %q unchanged after the link's target was replaced", ver1)
	}
}

// TestListVersionsSkipsWhatListSkips: ListVersions filters exactly like
// List (temporaries, dot-files, directories, links to directories).
func TestListVersionsSkipsWhatListSkips(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := t.Context()
	for _, n := range []string{"a", "b.c", "k-1"} {
		if err := s.Create(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{".tmp-1", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "subdir"), filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "a", "k", ".", "sub", "z"} {
		names, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := s.ListVersions(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, e := range entries {
			listed = append(listed, e.Name)
			if e.Version == "" {
				t.Errorf("ListVersions(%q): %q has no version", prefix, e.Name)
			}
		}
		if !slices.Equal(listed, names) {
			t.Errorf("ListVersions(%q) names = %q, List = %q", prefix, listed, names)
		}
	}
}

// TestVersionedClosed: the Versioned methods fail like the plain ones on
// a closed Store.
func TestVersionedClosed(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.CreateVersion(ctx, "n", []byte("v")); !errors.Is(err, store.ErrUnreachable) || v != "" {
		t.Errorf("CreateVersion after Close = (%q, %v), want ErrUnreachable", v, err)
	}
	if _, v, err := s.GetVersion(ctx, "k"); !errors.Is(err, store.ErrUnreachable) || v != "" {
		t.Errorf("GetVersion after Close = (%q, %v), want ErrUnreachable", v, err)
	}
	if _, err := s.ListVersions(ctx, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("ListVersions after Close = %v, want ErrUnreachable", err)
	}
}
