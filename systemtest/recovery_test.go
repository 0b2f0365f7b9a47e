package systemtest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestLostQuorumRecovery follows docs/operations.md: two of three nodes are
// gone for good; the operator writes peers.json on the survivor and
// restarts it, and it serves (and accepts writes) as a one-node cluster.
// A key the lost majority deleted while the survivor was cut off is never
// served by the survivor: it holds back every key record until the records
// are reconciled with the keystore.
func TestLostQuorumRecovery(t *testing.T) {
	c := threeNodes(t)
	for _, k := range []string{"survives", "deleted-by-majority"} {
		if err := c.client("n1").CreateKey(bg, k); err != nil {
			t.Fatal(err)
		}
	}
	assertConverged(t, c)
	survivor := follower(c)
	// The survivor is cut off; the majority deletes a key it never hears of.
	c.nodes[survivor].sw.Cut()
	if err := c.client(c.leader()).DeleteKey(bg, "deleted-by-majority"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.nodes[survivor].srv.FSM().Key(enclave.DefaultEnclave, "deleted-by-majority"); !ok {
		t.Fatal("test premise: the cut-off survivor already applied the delete")
	}
	for _, id := range c.running() {
		if id != survivor {
			c.stop(id)
		}
	}
	c.stop(survivor)
	c.nodes[survivor].sw.Heal()

	peers := []map[string]any{{"id": survivor, "address": c.nodes[survivor].rftAddr, "non_voter": false}}
	b, _ := json.Marshal(peers)
	dataDir := c.nodes[survivor].cfg.Cluster.DataDir
	if err := os.WriteFile(filepath.Join(dataDir, cluster.PeersFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(survivor)
	if _, err := os.Stat(filepath.Join(dataDir, cluster.PeersFile+".applied")); err != nil {
		t.Fatalf("peers file not marked applied: %v", err)
	}
	// From its first answer on, the survivor never serves the deleted key:
	// 503 while the records are held back, then 404.
	testutil.Eventually(t, 20*time.Second, "the deleted key answers 404", func() bool {
		_, err := c.client(survivor).GenerateKey(bg, "deleted-by-majority", nil)
		if err == nil {
			t.Fatal("the survivor generated a data key under a key the majority had deleted")
		}
		return errors.Is(err, client.ErrKeyNotFound)
	})
	if got := c.nodes[survivor].srv.FSM().HeldBack(); got != 0 {
		t.Fatalf("the survivor still holds back records through index %d", got)
	}
	testutil.Eventually(t, 15*time.Second, "survivor accepts writes alone", func() bool {
		return c.client(survivor).CreateKey(bg, "after-recovery") == nil
	})
	if _, err := c.client(survivor).DescribeKey(bg, "survives"); err != nil {
		t.Fatalf("key from before the loss: %v", err)
	}
	servers, err := c.nodes[survivor].srv.Node().Servers()
	if err != nil || len(servers) != 1 {
		t.Fatalf("servers after recovery = %v, %v", servers, err)
	}
}
