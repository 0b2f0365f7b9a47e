package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/testutil"
)

// snapshotDirs returns the finished Raft snapshot directories.
func snapshotDirs(dataDir string) []string {
	root := filepath.Join(dataDir, "snapshots", "snapshots")
	entries, _ := os.ReadDir(root)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	return dirs
}

// usedNode runs a dev node with a low snapshot threshold, creates keys
// until Raft has written a snapshot, and stops it.
func usedNode(t *testing.T) *config.Config {
	t.Helper()
	cfg, key, err := DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg, Options{
		APIListener: testutil.Listen(t), RaftListener: testutil.Listen(t), AuditOut: io.Discard, SnapshotThreshold: 2,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := adminClient(t, s, key)
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		if err := c.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 30*time.Second, "a Raft snapshot", func() bool { return len(snapshotDirs(cfg.Cluster.DataDir)) > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// digests returns the SHA-256 of every file under the directories.
func digests(t *testing.T, dirs ...string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			m[p] = sha256.Sum256(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// truncate cuts a file to half its size, and a bbolt file to at most
// three pages: bbolt doubles its file ahead of use, so the second half of
// a small database may hold nothing yet, while every database the tests
// make uses more than three pages.
func truncate(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size() / 2
	if strings.HasSuffix(path, ".db") {
		size = min(size, 3*4096)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func garbage(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("\x00garbage\xff{not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptStateRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, cfg *config.Config) string // returns the damaged file
	}{
		{"truncated raft.db", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(cfg.Cluster.DataDir, "raft.db")
			truncate(t, p)
			return p
		}},
		{"truncated fsm.db", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(cfg.Cluster.DataDir, "fsm.db")
			truncate(t, p)
			return p
		}},
		{"truncated snapshot", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(snapshotDirs(cfg.Cluster.DataDir)[0], "state.bin")
			truncate(t, p)
			return p
		}},
		{"garbage snapshot metadata", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(snapshotDirs(cfg.Cluster.DataDir)[0], "meta.json")
			garbage(t, p)
			return p
		}},
		{"garbage keystore entry", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(cfg.Keystore.FS.Path, "k2")
			garbage(t, p)
			return p
		}},
		{"garbage seal key", func(t *testing.T, cfg *config.Config) string {
			p := filepath.Join(cfg.Keystore.FS.Path, "keyraft.seal")
			garbage(t, p)
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := usedNode(t)
			bad := tc.damage(t, cfg)
			before := digests(t, cfg.Cluster.DataDir, cfg.Keystore.FS.Path)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := Start(ctx, cfg, Options{APIListener: testutil.Listen(t), RaftListener: testutil.Listen(t), AuditOut: io.Discard})
			if err == nil {
				s.Close()
				t.Fatal("node started on damaged state")
			}
			var ce *CorruptFileError
			if !errors.Is(err, ErrCorruptState) || !errors.As(err, &ce) || ce.Path != bad || !strings.Contains(err.Error(), bad) {
				t.Fatalf("err = %v, want a CorruptFileError naming %s", err, bad)
			}
			after := digests(t, cfg.Cluster.DataDir, cfg.Keystore.FS.Path)
			if len(after) != len(before) {
				t.Fatalf("files changed: %d before, %d after", len(before), len(after))
			}
			for p, d := range before {
				if after[p] != d {
					t.Errorf("%s was modified", p)
				}
			}
		})
	}
}

// TestKeystoreCheckSkipsEntriesDeletedMeanwhile: the nodes of a cluster
// share the keystore, so an entry listed at start may be deleted by the
// leader before the check reads it. That is not corruption; garbage in an
// entry that is still there is.
func TestKeystoreCheckSkipsEntriesDeletedMeanwhile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a-gone", "b-garbage"} { // listed in this order
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a-gone")); err != nil {
		t.Fatal(err)
	}
	err = checkFSEntries(dir, entries)
	var ce *CorruptFileError
	if !errors.As(err, &ce) || ce.Path != filepath.Join(dir, "b-garbage") {
		t.Fatalf("err = %v, want a CorruptFileError naming only the garbage entry", err)
	}
	if err := os.Remove(filepath.Join(dir, "b-garbage")); err != nil {
		t.Fatal(err)
	}
	if err := checkFSEntries(dir, entries); err != nil {
		t.Fatalf("both entries deleted since the listing: %v", err)
	}
}
