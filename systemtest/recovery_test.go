package systemtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestLostQuorumRecovery follows docs/operations.md: two of three nodes are
// gone for good; the operator writes peers.json on the survivor and
// restarts it, and it serves (and accepts writes) as a one-node cluster.
func TestLostQuorumRecovery(t *testing.T) {
	c := threeNodes(t)
	if err := c.client("n1").CreateKey(bg, "survives"); err != nil {
		t.Fatal(err)
	}
	assertConverged(t, c)
	survivor := follower(c)
	for _, id := range c.running() {
		if id != survivor {
			c.stop(id)
		}
	}
	c.stop(survivor)

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
