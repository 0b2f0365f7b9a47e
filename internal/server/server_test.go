package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/testutil"
)

func startNode(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg, Options{
		APIListener: testutil.Listen(t), RaftListener: testutil.Listen(t), AuditOut: io.Discard,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

func adminClient(t *testing.T, s *Server, key identity.APIKey) *client.Client {
	t.Helper()
	c, err := client.New([]string{"https://" + s.Addr().String()}, client.WithAPIKey(key), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDevNodeRestartKeepsKeysAndNoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, key, err := DevConfig(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startNode(t, cfg)
	c := adminClient(t, s, key)

	names := []string{"k1", "k2", "minio-default"}
	ciphertexts := map[string][]byte{}
	for _, n := range names {
		if err := c.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
		dek, err := c.GenerateKey(ctx, n, []byte(`{"bucket":"b/o"}`))
		if err != nil {
			t.Fatal(err)
		}
		ciphertexts[n] = dek.Ciphertext
	}
	if err := c.CreateKey(ctx, "k1"); !errors.Is(err, client.ErrKeyExists) {
		t.Fatalf("create existing: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Every key's bytes (and HMAC key bytes) from the keystore must appear
	// nowhere in the data directory: not in the Raft log, snapshots or FSM.
	secrets := 0
	for _, n := range names {
		v, err := os.ReadFile(filepath.Join(cfg.Keystore.FS.Path, n))
		if err != nil {
			t.Fatal(err)
		}
		kv, err := crypto.ParseKeyVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{kv.Key.Key[:], kv.HMAC.Key[:], bytes.TrimSpace(v)} {
			files, hits := testutil.ScanForSecret(t, cfg.Cluster.DataDir, secret)
			if files < 2 {
				t.Fatalf("scanned only %d files in %s", files, cfg.Cluster.DataDir)
			}
			if len(hits) > 0 {
				t.Fatalf("key %s material found on disk in %v", n, hits)
			}
			secrets++
		}
	}
	if secrets != 9 {
		t.Fatalf("checked %d secrets", secrets)
	}

	// Restart on the same data: every key still works, old ciphertexts too.
	s = startNode(t, cfg)
	defer s.Close()
	c = adminClient(t, s, key)
	for _, n := range names {
		if _, err := c.Decrypt(ctx, n, ciphertexts[n], []byte(`{"bucket":"b/o"}`)); err != nil {
			t.Fatalf("decrypt %s after restart: %v", n, err)
		}
	}
	all, err := c.ListAllKeys(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("list after restart = %v, %v", all, err)
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"keyraft_cluster_is_leader": 1, "keyraft_cluster_members": 1, "keyraft_cache_sealed_keys": 3, "keyraft_cache_unsealed_keys": 3, "keyraft_keystore_offline": 0} {
		if got, ok := m.Samples[name]; !ok || got != want {
			t.Errorf("metric %s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if m.Samples["kes_http_request_success"] == 0 {
		t.Error("KES request counter missing")
	}
}
