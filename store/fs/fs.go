// Package fs is a store.Store kept in one directory, in the same layout as
// KES's filesystem keystore: every entry is one regular file whose name is
// the entry name and whose content is the stored value, nothing else. A
// directory written by KES is therefore readable unchanged, and KES can read
// the KES-valid entries this package writes.
//
// Writes are crash safe: Create writes the value to a temporary file
// (".tmp-*", never a valid entry name), fsyncs it, hard-links it to the final
// name (an atomic create-if-absent) and fsyncs the directory, so an entry is
// either absent or complete. Open removes temporaries left by a crash.
//
// Names may contain '.' (Keyraft's reserved and namespaced entries do, which
// keeps them apart from KES key names) but never start with '.', and never
// contain '/', '\' or NUL.
//
// Store implements store.Versioned. An entry's version is made of its file's
// modification time (in nanoseconds), inode number and size, formatted as
// "<mtime>-<inode>-<size>" in decimal. An operator who replaces a file (a new
// file renamed over it, a new inode) or rewrites it in place (a new
// modification time, or size) changes the version. The modification time
// has the filesystem's granularity (on Linux often a few milliseconds, on
// some filesystems seconds): a same-size rewrite in place within one tick of
// the previous write keeps the version. Platforms without inode numbers
// use 0.
package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyraft/keyraft/store"
)

// tempPrefix starts the name of every temporary file Create makes. A leading
// '.' makes it an invalid entry name, so temporaries never show up in List.
const tempPrefix = ".tmp-"

// maxNameLen is the longest file name common filesystems accept.
const maxNameLen = 255

// Store is a directory keystore. Create one with Open.
//
// All methods are safe for concurrent use, also by several Store values (or
// processes) on the same directory: Create is atomic create-if-absent and
// Delete removes at most once. Only Open must not run while another process
// is writing the directory, since it deletes temporary files it finds.
type Store struct {
	dir    string
	closed atomic.Bool
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Versioned = (*Store)(nil)
)

// Open returns a Store for dir, creating dir (mode 0700, with parents) if it
// does not exist; an existing directory keeps its mode. It removes temporary
// files (".tmp-*") that a crashed Create left behind. It returns an error if
// dir is empty, is not a directory, or cannot be created or read.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: empty directory path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs: create directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fs: %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: read directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) && e.Type().IsRegular() {
			err := os.Remove(filepath.Join(dir, e.Name()))
			if err != nil && !errors.Is(err, iofs.ErrNotExist) {
				return nil, fmt.Errorf("fs: remove stale temporary file: %w", err)
			}
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the directory the Store reads and writes.
func (s *Store) Dir() string { return s.dir }

// validName returns an error wrapping store.ErrInvalidName unless name can be
// stored as a file directly inside the directory.
func validName(name string) error {
	var reason string
	switch {
	case name == "":
		reason = "empty name"
	case len(name) > maxNameLen:
		reason = "name longer than 255 bytes"
	case name[0] == '.':
		reason = "name starts with '.'"
	case strings.ContainsAny(name, "/\\\x00"):
		reason = "name contains '/', '\\' or NUL"
	default:
		return nil
	}
	return fmt.Errorf("fs: %q: %s: %w", name, reason, store.ErrInvalidName)
}

// begin checks the context and that the Store is open.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	if s.closed.Load() {
		return fmt.Errorf("fs: store is closed: %w", store.ErrUnreachable)
	}
	return nil
}

// dirError returns an error wrapping store.ErrUnreachable if the directory
// itself is gone or is no longer a directory, and nil otherwise.
func (s *Store) dirError() error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("fs: directory %s: %w (%w)", s.dir, store.ErrUnreachable, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("fs: %s is not a directory: %w", s.dir, store.ErrUnreachable)
	}
	return nil
}

// ioError wraps an unexpected filesystem error, as ErrUnreachable when the
// directory is gone.
func (s *Store) ioError(op, name string, err error) error {
	if derr := s.dirError(); derr != nil {
		return derr
	}
	return fmt.Errorf("fs: %s %q: %w", op, name, err)
}

// notFound returns ErrNotFound for name, or ErrUnreachable when the reason
// the file is missing is that the whole directory is gone.
func (s *Store) notFound(op, name string) error {
	if derr := s.dirError(); derr != nil {
		return derr
	}
	return fmt.Errorf("fs: %s %q: %w", op, name, store.ErrNotFound)
}

// Create stores value in a new file named name, readable by the owner only
// (0600). It returns an error wrapping store.ErrExists if name exists (as any
// directory entry), store.ErrInvalidName for an invalid name, ctx.Err() if
// ctx is done, store.ErrUnreachable if the directory is gone or the Store is
// closed, or the filesystem error. If Create fails before the entry is
// linked, nothing changed; if only the final directory fsync fails, the
// entry exists and Create returns the error.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	_, err := s.CreateVersion(ctx, name, value)
	return err
}

// CreateVersion is Create that also returns the version of the file it
// created, taken from a stat of the new file (through its temporary name,
// which no one else uses). It fails exactly like Create and returns "" with
// every error. If the new file cannot be stated (it exists, so the create
// succeeded) it returns "" and no error.
func (s *Store) CreateVersion(ctx context.Context, name string, value []byte) (string, error) {
	if err := s.begin(ctx); err != nil {
		return "", err
	}
	if err := validName(name); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return "", s.ioError("create", name, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op once removed below

	if err := writeSync(tmp, value); err != nil {
		return "", s.ioError("create", name, err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("fs: %w", err)
	}
	if err := os.Link(tmpName, filepath.Join(s.dir, name)); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return "", fmt.Errorf("fs: create %q: %w", name, store.ErrExists)
		}
		return "", s.ioError("create", name, err)
	}
	// The temporary name is still a link to the new file, and ours alone:
	// unlike the entry's name, no one can have replaced it yet. Linking
	// changes neither the modification time nor the inode.
	var version string
	if fi, err := os.Stat(tmpName); err == nil {
		version = fileVersion(fi)
	}
	if err := os.Remove(tmpName); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return "", s.ioError("create", name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", s.ioError("create", name, err)
	}
	return version, nil
}

// fileVersion returns the version of the file fi describes:
// "<mtime ns>-<inode>-<size>".
func fileVersion(fi iofs.FileInfo) string {
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, inode(fi), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 10)
	return string(b)
}

// writeSync writes value to f, flushes it to stable storage and closes f.
func writeSync(f *os.File, value []byte) error {
	_, err := f.Write(value)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir flushes the directory's entries (a link or unlink) to stable storage.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the content of the file named name. It returns an error
// wrapping store.ErrNotFound if there is no such regular file (symbolic links
// to regular files are followed), store.ErrInvalidName for an invalid name,
// ctx.Err() if ctx is done, store.ErrUnreachable if the directory is gone or
// the Store is closed, or the filesystem error.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	value, _, err := s.GetVersion(ctx, name)
	return value, err
}

// readAttempts is how often GetVersion reads a file that changes while it is
// being read before it settles for the last read.
const readAttempts = 3

// GetVersion is Get that also returns the version of the file it read,
// taken with fstat from the descriptor it read through, before reading. If
// the file changes while it is read (a rewrite in place), GetVersion reads
// it again, up to readAttempts times in all; if it never holds still, the
// last read is returned with the version from before that read, so a later
// ListVersions reports a different version and the caller reloads. It fails
// exactly like Get and returns "" with every error.
func (s *Store) GetVersion(ctx context.Context, name string) ([]byte, string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	if err := validName(name); err != nil {
		return nil, "", err
	}
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, "", s.notFound("get", name)
	}
	if err != nil {
		return nil, "", s.ioError("get", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", s.ioError("get", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("fs: get %q: not a regular file: %w", name, store.ErrNotFound)
	}
	for attempt := 1; ; attempt++ {
		version := fileVersion(fi)
		// The spare capacity lets ReadFrom see EOF without growing the
		// buffer when the size is still the one fi reports.
		var buf bytes.Buffer
		buf.Grow(int(fi.Size()) + bytes.MinRead)
		if _, err := buf.ReadFrom(f); err != nil {
			return nil, "", s.ioError("get", name, err)
		}
		if fi, err = f.Stat(); err != nil {
			return nil, "", s.ioError("get", name, err)
		}
		if fileVersion(fi) == version || attempt == readAttempts {
			return buf.Bytes(), version, nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, "", s.ioError("get", name, err)
		}
	}
}

// Delete removes the file named name. It returns an error wrapping
// store.ErrNotFound if there is no such regular file (it never removes a
// directory), store.ErrInvalidName for an invalid name, ctx.Err() if ctx is
// done, store.ErrUnreachable if the directory is gone or the Store is closed,
// or the filesystem error. If only the directory fsync fails, the entry is
// gone and Delete returns the error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	path := filepath.Join(s.dir, name)
	fi, err := os.Stat(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return s.notFound("delete", name)
	}
	if err != nil {
		return s.ioError("delete", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("fs: delete %q: not a regular file: %w", name, store.ErrNotFound)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return s.notFound("delete", name) // a concurrent Delete won
		}
		return s.ioError("delete", name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return s.ioError("delete", name, err)
	}
	return nil
}

// listBatch is how many directory entries List reads between context checks.
const listBatch = 1024

// List returns the names of the entries starting with prefix, sorted
// ascending; an empty prefix lists all. Entries are regular files (or
// symbolic links to regular files) with a valid name; temporaries,
// dot-files, subdirectories and other file types are skipped. It returns an
// error wrapping ctx.Err() if ctx is done (also between batches of a large
// directory), store.ErrUnreachable if the directory is gone, unreadable or
// the Store is closed.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	entries, err := s.list(ctx, prefix, false)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	return store.Names(entries), nil
}

// ListVersions is List that also returns every entry's version, from a stat
// of the file its name leads to (following a symbolic link, as GetVersion
// does), sorted by name. An entry removed between reading the directory and
// the stat is left out. It fails like List, and also with the filesystem
// error if an entry cannot be stated for another reason.
func (s *Store) ListVersions(ctx context.Context, prefix string) ([]store.Entry, error) {
	return s.list(ctx, prefix, true)
}

// list implements List and, with versions set, ListVersions.
func (s *Store) list(ctx context.Context, prefix string, versions bool) ([]store.Entry, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("fs: list: %w (%w)", store.ErrUnreachable, err)
	}
	defer d.Close()

	var out []store.Entry
	for {
		entries, err := d.ReadDir(listBatch)
		for _, e := range entries {
			if !s.isEntry(e) || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			entry := store.Entry{Name: e.Name()}
			if versions {
				fi, err := os.Stat(filepath.Join(s.dir, e.Name()))
				if errors.Is(err, iofs.ErrNotExist) {
					continue // deleted since ReadDir
				}
				if err != nil {
					return nil, s.ioError("list", prefix, err)
				}
				if !fi.Mode().IsRegular() {
					continue // replaced by a non-entry since ReadDir
				}
				entry.Version = fileVersion(fi)
			}
			out = append(out, entry)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, s.ioError("list", prefix, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fs: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// isEntry reports whether a directory entry is a stored entry.
func (s *Store) isEntry(e iofs.DirEntry) bool {
	if validName(e.Name()) != nil {
		return false
	}
	switch t := e.Type(); {
	case t.IsRegular():
		return true
	case t&iofs.ModeSymlink != 0:
		fi, err := os.Stat(filepath.Join(s.dir, e.Name()))
		return err == nil && fi.Mode().IsRegular()
	default:
		return false
	}
}

// Status opens and stats the directory and reports how long that took. It
// returns an error wrapping store.ErrUnreachable if the directory is gone,
// unreadable, not a directory, or the Store is closed, and ctx.Err() if ctx
// is done.
func (s *Store) Status(ctx context.Context) (store.State, error) {
	if err := s.begin(ctx); err != nil {
		return store.State{}, err
	}
	start := time.Now()
	d, err := os.Open(s.dir)
	if err != nil {
		return store.State{}, fmt.Errorf("fs: status: %w (%w)", store.ErrUnreachable, err)
	}
	fi, err := d.Stat()
	d.Close()
	if err != nil {
		return store.State{}, fmt.Errorf("fs: status: %w (%w)", store.ErrUnreachable, err)
	}
	if !fi.IsDir() {
		return store.State{}, fmt.Errorf("fs: status: %s is not a directory: %w", s.dir, store.ErrUnreachable)
	}
	return store.State{Latency: time.Since(start)}, nil
}

// Close marks the Store closed; afterwards every method returns an error
// wrapping store.ErrUnreachable. The Store holds no open files, so Close
// never fails and is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
