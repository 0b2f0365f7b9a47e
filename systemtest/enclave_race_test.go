package systemtest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/testutil"
)

// namespaceFiles returns the fs keystore's entries of an enclave's
// namespace ("keyraft.e.<enclave>.").
func namespaceFiles(t *testing.T, dir, enclave string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "keyraft.e."+enclave+".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestEnclaveDeleteRacesCreatesOnCluster: clients create keys through a
// follower while the enclave is deleted (through the other follower) and
// re-created, several times. No acknowledged key may survive the delete:
// the keystore holds none of the enclave's entries afterwards, and the
// re-created enclave lists no key, through the API or in the keystore.
func TestEnclaveDeleteRacesCreatesOnCluster(t *testing.T) {
	c := threeNodes(t)
	const (
		name    = "racy"
		runs    = 5
		workers = 8
	)
	creator := follower(c)
	deleter := follower(c, creator)
	adminID := c.admin.Identity()
	root := c.client(deleter)
	keys := c.client(creator).Enclave(name)
	if err := root.CreateEnclave(bg, name, adminID); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	total, survivors := 0, 0
	for run := range runs {
		var (
			mu    sync.Mutex
			acked []string
			stop  atomic.Bool
			wg    sync.WaitGroup
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					k := fmt.Sprintf("k-%d-%d-%d", run, w, i)
					err := keys.CreateKey(bg, k)
					switch {
					case err == nil:
						mu.Lock()
						acked = append(acked, k)
						mu.Unlock()
					case errors.Is(err, client.ErrEnclaveNotFound):
					default:
						t.Errorf("create %s: %v", k, err)
						return
					}
				}
			}()
		}
		testutil.Eventually(t, 10*time.Second, "creates through the follower are acknowledged", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 30
		})
		if err := root.DeleteEnclave(bg, name); err != nil {
			t.Fatalf("run %d: delete: %v", run, err)
		}
		mu.Lock()
		ackedAtDelete := len(acked)
		mu.Unlock()
		stop.Store(true)
		wg.Wait()
		total += len(acked)

		left := namespaceFiles(t, c.keystore, name)
		ackedLeft := 0
		for _, k := range acked {
			if slices.Contains(left, "keyraft.e."+name+"."+k) {
				ackedLeft++
			}
		}
		survivors += ackedLeft
		if len(left) != 0 {
			t.Errorf("run %d: %d of %d acknowledged keys (and %d others) still in the keystore after the delete: %v",
				run, ackedLeft, len(acked), len(left)-ackedLeft, left[:min(len(left), 5)])
		}
		if err := root.CreateEnclave(bg, name, adminID); err != nil {
			t.Fatalf("run %d: re-create: %v", run, err)
		}
		for _, id := range c.running() {
			cl := c.client(id)
			testutil.Eventually(t, 10*time.Second, "the re-created enclave reaches "+id, func() bool {
				_, err := cl.DescribeEnclave(bg, name)
				return err == nil
			})
			listed, err := cl.Enclave(name).ListAllKeys(bg, "")
			if err != nil {
				t.Fatalf("run %d: list on %s: %v", run, id, err)
			}
			if len(listed) != 0 {
				t.Fatalf("run %d: the re-created enclave lists %d keys on %s, e.g. %v", run, len(listed), id, listed[:min(len(listed), 5)])
			}
		}
		if left := namespaceFiles(t, c.keystore, name); len(left) != 0 {
			t.Fatalf("run %d: keystore holds %d entries of the re-created enclave", run, len(left))
		}
		// A sample of the keys acknowledged before the delete: gone.
		for _, k := range acked[:min(ackedAtDelete, 10)] {
			if _, err := keys.DescribeKey(bg, k); !errors.Is(err, client.ErrKeyNotFound) {
				t.Fatalf("run %d: key %s acknowledged before the delete: %v", run, k, err)
			}
		}
	}
	t.Logf("%d runs in %v: %d creates acknowledged, %d keys survived their enclave's deletion",
		runs, time.Since(start).Round(time.Millisecond), total, survivors)
}
