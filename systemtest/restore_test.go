package systemtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/testutil"
)

var nodeIDs = []string{"n1", "n2", "n3"}

// threeNodesOn is threeNodes on a given keystore directory (another
// cluster's, so both have the same seal key).
func threeNodesOn(t *testing.T, keystore string) *testCluster {
	c := newTestCluster(t, nodeIDs...)
	c.keystore = keystore
	c.start("n1")
	join := []string{"https://" + c.nodes["n1"].apiAddr}
	c.start("n2", join...)
	c.start("n3", join...)
	return c
}

// saveSnapshot takes a backup through the API, as `keyraft cluster
// snapshot save` does.
func saveSnapshot(t *testing.T, c *testCluster, id string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := c.client(id).SaveSnapshot(bg, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restore restores a backup through the leader's API, as `keyraft cluster
// snapshot restore` does.
func restore(t *testing.T, c *testCluster, backup []byte) {
	t.Helper()
	if err := c.client(c.leader()).RestoreSnapshot(ctxTimeout(t, 60*time.Second), backup); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

type membership struct {
	servers []cluster.Server
	members []fsm.Member
}

// membershipOf returns every node's Raft configuration and member records.
func membershipOf(t *testing.T, c *testCluster) map[string]membership {
	t.Helper()
	out := map[string]membership{}
	for _, id := range c.running() {
		servers, err := c.nodes[id].srv.Node().Servers()
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
		out[id] = membership{servers, c.nodes[id].srv.FSM().Members()}
	}
	return out
}

// retry503 calls fn until it answers something other than a 503 (restored
// keys answer 503 until they are reconciled) and returns that answer.
func retry503(t *testing.T, what string, fn func() error) error {
	t.Helper()
	var err error
	testutil.Eventually(t, 20*time.Second, what+" answers other than 503", func() bool {
		err = fn()
		return awsErrCode(err) != 503
	})
	return err
}

// TestRestoreOlderSnapshotAppliesLaterWrites restores a backup whose applied
// index is far above the Raft index of the cluster it is restored into:
// every write acknowledged afterwards must be applied on every node,
// also across a restart, and the restore must not change membership.
func TestRestoreOlderSnapshotAppliesLaterWrites(t *testing.T) {
	old := newTestCluster(t, "old")
	old.start("old")
	oc := old.client("old")
	if err := oc.CreateKey(bg, "in-backup"); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if err := oc.WritePolicy(bg, fmt.Sprintf("backup-%d", i), []string{"/v1/key/generate/*"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	backup := saveSnapshot(t, old, "old")
	backupApplied := old.nodes["old"].srv.FSM().AppliedIndex()
	old.stop("old")

	c := threeNodesOn(t, old.keystore)
	leader := c.leader()
	if live := c.nodes[leader].srv.FSM().AppliedIndex(); live+20 >= backupApplied {
		t.Fatalf("test premise: backup applied index %d is not far above the live %d", backupApplied, live)
	}
	// Every node must have applied the last join before the membership
	// is recorded, or a lagging node's view would differ from itself later.
	assertConverged(t, c)
	before := membershipOf(t, c)
	restore(t, c, backup)

	var keys, policies []string
	for _, id := range nodeIDs {
		for j := range 3 {
			k, p := fmt.Sprintf("after-%s-%d", id, j), fmt.Sprintf("policy-%s-%d", id, j)
			if err := c.client(id).CreateKey(bg, k); err != nil {
				t.Fatalf("create %s on %s: %v", k, id, err)
			}
			if err := c.client(id).WritePolicy(bg, p, []string{"/v1/key/describe/*"}, nil); err != nil {
				t.Fatalf("write policy %s on %s: %v", p, id, err)
			}
			keys, policies = append(keys, k), append(policies, p)
		}
	}
	// checkApplied checks every acknowledged write on every running node:
	// in its FSM (a key missing there would be loaded from the keystore
	// and hide the loss) and through its API.
	checkApplied := func() {
		t.Helper()
		assertConverged(t, c)
		for _, id := range c.running() {
			f := c.nodes[id].srv.FSM()
			for _, k := range keys {
				if _, ok := f.Key("default", k); !ok {
					t.Fatalf("%s: acknowledged key %s was never applied", id, k)
				}
			}
			for _, p := range policies {
				if _, err := c.client(id).DescribePolicy(bg, p); err != nil {
					t.Fatalf("%s: acknowledged policy %s: %v", id, p, err)
				}
			}
			if _, err := c.client(id).DescribePolicy(bg, "backup-149"); err != nil {
				t.Fatalf("%s: restored policy: %v", id, err)
			}
			if err := retry503(t, "generate under the restored key on "+id, func() error {
				_, err := c.client(id).GenerateKey(bg, "in-backup", nil)
				return err
			}); err != nil {
				t.Fatalf("%s: restored key: %v", id, err)
			}
		}
	}
	checkApplied()
	if after := membershipOf(t, c); !reflect.DeepEqual(after, before) {
		t.Fatalf("membership changed by the restore:\nbefore %+v\nafter  %+v", before, after)
	}

	// A follower restarts (restoring its latest snapshot and replaying the
	// log after it) and misses a write while down: it converges and keeps
	// applying.
	down := follower(c)
	c.stop(down)
	if err := c.client(c.leader()).CreateKey(bg, "while-down"); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "while-down")
	c.start(down)
	if err := c.client(down).CreateKey(bg, "after-restart"); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "after-restart")
	checkApplied()
	if after := membershipOf(t, c); !reflect.DeepEqual(after, before) {
		t.Fatalf("membership changed after the restart:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestRestoreNeverServesADeletedKey restores a backup that still holds a
// key deleted since: no node may generate a data key under it, at any time
// during or after the restore.
func TestRestoreNeverServesADeletedKey(t *testing.T) {
	c := threeNodes(t)
	lc := c.client(c.leader())
	for _, k := range []string{"snap-a", "snap-b"} {
		if err := lc.CreateKey(bg, k); err != nil {
			t.Fatal(err)
		}
		for _, id := range nodeIDs { // every node caches it unsealed
			if _, err := c.client(id).GenerateKey(bg, k, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	backup := saveSnapshot(t, c, c.leader())
	if err := lc.DeleteKey(bg, "snap-b"); err != nil {
		t.Fatal(err)
	}
	if err := lc.CreateKey(bg, "snap-c"); err != nil {
		t.Fatal(err)
	}

	// Every node is asked for snap-b data keys from before the restore
	// until it answered 404 twenty times after the restore returned.
	var (
		mu         sync.Mutex
		violations []string
		restored   = make(chan struct{})
		wg         sync.WaitGroup
	)
	violate := func(v string) {
		mu.Lock()
		violations = append(violations, v)
		mu.Unlock()
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range nodeIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.client(id)
			for notFoundAfter := 0; notFoundAfter < 20; waitTick() {
				if time.Now().After(deadline) {
					violate(id + ": never answered 404 for snap-b after the restore")
					return
				}
				ctx, cancel := context.WithTimeout(bg, 10*time.Second)
				_, err := cl.GenerateKey(ctx, "snap-b", nil)
				cancel()
				switch code := awsErrCode(err); {
				case err == nil:
					violate(id + ": generated a data key under the deleted key snap-b")
					return
				case code == 404:
					select {
					case <-restored:
						notFoundAfter++
					default:
					}
				case code != 503:
					violate(fmt.Sprintf("%s: unexpected answer %v", id, err))
					return
				}
			}
		}()
	}
	restore(t, c, backup)
	close(restored)
	wg.Wait()
	if len(violations) > 0 {
		t.Fatalf("during the restore:\n%v", violations)
	}

	for _, id := range nodeIDs {
		cl := c.client(id)
		if _, err := cl.DescribeKey(bg, "snap-b"); !errors.Is(err, kes.ErrKeyNotFound) {
			t.Fatalf("%s: describe snap-b: %v", id, err)
		}
		for _, k := range []string{"snap-a", "snap-c"} {
			dek, err := cl.GenerateKey(bg, k, []byte("x"))
			if err != nil {
				t.Fatalf("%s: generate under %s: %v", id, k, err)
			}
			if pt, err := cl.Decrypt(bg, k, dek.Ciphertext, []byte("x")); err != nil || !bytes.Equal(pt, dek.Plaintext) {
				t.Fatalf("%s: decrypt under %s: %v", id, k, err)
			}
		}
	}
	assertConverged(t, c)
}

// TestRestoreAfterDeleteAndRecreateServesNewMaterial restores a backup that
// holds a key's old material after the key was deleted and created again:
// every node must serve the keystore's new material.
func TestRestoreAfterDeleteAndRecreateServesNewMaterial(t *testing.T) {
	c := threeNodes(t)
	lc := c.client(c.leader())
	if err := lc.CreateKey(bg, "k"); err != nil {
		t.Fatal(err)
	}
	oldDEK, err := lc.GenerateKey(bg, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	backup := saveSnapshot(t, c, c.leader())
	if err := lc.DeleteKey(bg, "k"); err != nil {
		t.Fatal(err)
	}
	if err := lc.CreateKey(bg, "k"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.client(follower(c)).GenerateKey(bg, "k", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range nodeIDs { // every node caches the new material
		if _, err := c.client(id).Decrypt(bg, "k", dek.Ciphertext, []byte("ctx")); err != nil {
			t.Fatal(err)
		}
	}

	restore(t, c, backup)
	for _, id := range nodeIDs {
		cl := c.client(id)
		var pt []byte
		err := retry503(t, "decrypt on "+id, func() (err error) {
			pt, err = cl.Decrypt(bg, "k", dek.Ciphertext, []byte("ctx"))
			return err
		})
		if err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("%s serves the backup's old material of k: %v", id, err)
		}
		if _, err := cl.Decrypt(bg, "k", oldDEK.Ciphertext, nil); !errors.Is(err, kes.ErrDecrypt) {
			t.Fatalf("%s: ciphertext under the old material: %v", id, err)
		}
	}
	assertConverged(t, c)
	assertNoPlaintext(t, c) // the reload replicated sealed material only
}
