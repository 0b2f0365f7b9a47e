package systemtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestSealRotationUnderLoad rotates the seal key of three nodes while
// clients generate and decrypt on every node, with a follower down when
// the rotation begins and started again while it runs: no request fails,
// every node ends with the new seal key (the restarted one too, through
// a snapshot), old ciphertexts decrypt everywhere, and the old seal key
// is gone from the keystore.
func TestSealRotationUnderLoad(t *testing.T) {
	const keys = 800
	c := newTestCluster(t, nodeIDs...)
	c.snapshotThreshold = 64 // the restarted node catches up from a snapshot
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)
	admin := c.client(c.leader())

	names := make([]string, keys)
	var wg sync.WaitGroup
	var createErr atomic.Pointer[error]
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += 8 {
				names[i] = fmt.Sprintf("seal-%04d", i)
				if err := admin.CreateKey(bg, names[i]); err != nil {
					createErr.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := createErr.Load(); err != nil {
		t.Fatal(*err)
	}
	before, err := admin.GenerateKey(bg, names[7], nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := admin.ClusterStatus(bg)
	if err != nil {
		t.Fatal(err)
	}

	// Load on every node; each client fails over to the others, as MinIO
	// does with every node in MINIO_KMS_KES_ENDPOINT.
	stop := make(chan struct{})
	var requests, failures atomic.Int64
	for _, id := range nodeIDs {
		others := []string{id}
		for _, o := range nodeIDs {
			if o != id {
				others = append(others, o)
			}
		}
		cl := c.clientWith(c.admin, others...)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					name := names[rand.IntN(keys)]
					dek, err := cl.GenerateKey(bg, name, nil)
					if err == nil {
						var pt []byte
						pt, err = cl.Decrypt(bg, name, dek.Ciphertext, nil)
						if err == nil && !bytes.Equal(pt, dek.Plaintext) {
							err = errors.New("decrypt returned another plaintext")
						}
					}
					requests.Add(2)
					if err != nil {
						if failures.Add(1) <= 5 {
							t.Errorf("request on %s during the rotation: %v", name, err)
						}
					}
				}
			}()
		}
	}

	down := follower(c)
	for _, id := range nodeIDs {
		t.Logf("%s: %s", id, c.nodes[id].apiAddr)
	}
	t.Logf("stopping %s", down)
	c.stop(down)
	start := time.Now()
	st, err := c.client(c.leader()).RotateSeal(bg)
	if err != nil {
		t.Fatal(err)
	}
	target := st.RotatingTo
	if target == "" || st.ID != old.Seal.ID {
		t.Fatalf("rotation status = %+v", st)
	}
	c.start(down)
	t.Logf("%s started again", down)
	restartedMid := false
	if s, err := c.client(down).ClusterStatus(bg); err == nil && s.Seal.RotatingTo == target {
		restartedMid = true
	}
	for _, id := range nodeIDs {
		testutil.Eventually(t, 60*time.Second, id+" has the new seal key", func() bool {
			s, err := c.client(id).ClusterStatus(bg)
			return err == nil && s.Seal.ID == target && s.Seal.RotatingTo == ""
		})
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("rotated %d keys in %v under load; %d requests, %d failed; %s restarted %s the rotation",
		keys, took.Round(time.Millisecond), requests.Load(), failures.Load(), down, map[bool]string{true: "during", false: "after"}[restartedMid])
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed during the rotation", failures.Load(), requests.Load())
	}
	for _, id := range nodeIDs {
		pt, err := c.client(id).Decrypt(bg, names[7], before.Ciphertext, nil)
		if err != nil || !bytes.Equal(pt, before.Plaintext) {
			t.Fatalf("decrypt of a ciphertext made before the rotation on %s: %v", id, err)
		}
		testutil.Eventually(t, 5*time.Second, id+" drops the retired seal key", func() bool {
			_, err := c.nodes[id].srv.Service().SealKey(old.Seal.ID)
			return errors.Is(err, enclave.ErrSealed)
		})
	}
	if _, err := os.Stat(filepath.Join(c.keystore, enclave.SealName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the retired seal key is still in the keystore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.keystore, enclave.SealName+"."+target)); err != nil {
		t.Fatalf("the new seal key is not in the keystore: %v", err)
	}
}
