package server

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/internal/kes"
)

// TestRestoreRejectsInconsistentSnapshot checks that the restore endpoint
// answers 400 with the reason for snapshots that cannot be restored, and
// changes nothing.
func TestRestoreRejectsInconsistentSnapshot(t *testing.T) {
	ctx := context.Background()
	cfg, key, err := DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startNode(t, cfg)
	defer s.Close()
	c := adminClient(t, s, key)
	if err := c.CreateKey(ctx, "live"); err != nil {
		t.Fatal(err)
	}

	// Another cluster: its own keystore, so its own seal key.
	otherCfg, otherKey, err := DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := startNode(t, otherCfg)
	defer other.Close()
	oc := adminClient(t, other, otherKey)
	if err := oc.CreateKey(ctx, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	var foreign bytes.Buffer
	if err := oc.SaveSnapshot(ctx, &foreign); err != nil {
		t.Fatal(err)
	}

	digest := s.FSM().Digest()
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"garbage", "not a valid keyraft snapshot: bad header", []byte("garbage")},
		{"truncated header", "not a valid keyraft snapshot", foreign.Bytes()[:5]},
		{"another cluster", "backup of another cluster cannot be restored here", foreign.Bytes()},
	} {
		err := c.RestoreSnapshot(ctx, tc.data)
		var ke kes.Error
		if !errors.As(err, &ke) || ke.Code != 400 || !strings.Contains(ke.Message, tc.want) {
			t.Fatalf("%s: got %v, want 400 %q", tc.name, err, tc.want)
		}
	}
	if s.FSM().Digest() != digest {
		t.Fatal("a rejected restore changed the state")
	}
	if _, ok := s.FSM().RestorePending(); ok {
		t.Fatal("a rejected restore left a restore pending")
	}
}

// TestRestoreReconcilesBeforeAnswering checks that the restore answers
// only after the restored keys were reconciled with the keystore.
func TestRestoreReconcilesBeforeAnswering(t *testing.T) {
	ctx := context.Background()
	cfg, key, err := DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startNode(t, cfg)
	defer s.Close()
	c := adminClient(t, s, key)
	for _, k := range []string{"stays", "goes"} {
		if err := c.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	var backup bytes.Buffer
	if err := c.SaveSnapshot(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKey(ctx, "goes"); err != nil {
		t.Fatal(err)
	}
	if err := c.RestoreSnapshot(ctx, backup.Bytes()); err != nil {
		t.Fatal(err)
	}
	if m, ok := s.FSM().RestorePending(); ok {
		t.Fatalf("restore answered before the reconciliation (%+v)", m)
	}
	if _, ok := s.FSM().Key("default", "goes"); ok {
		t.Fatal("key deleted after the backup came back")
	}
	if _, err := c.GenerateKey(ctx, "stays", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(ctx, "goes", nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("generate under the deleted key: %v", err)
	}
}
