package enclave

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/store"
)

// slowReads is a keystore whose reads take a while, as AWS's do, and are
// counted.
type slowReads struct {
	store.Store
	gets atomic.Int32
}

func (s *slowReads) Get(ctx context.Context, name string) ([]byte, error) {
	s.gets.Add(1)
	t := time.NewTimer(50 * time.Millisecond) // simulated keystore latency
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Get(ctx, name)
}

// TestKeyLoadedOncePerCluster: a key only in the keystore, first used at
// the same time on the leader and on several followers (whose loads are
// forwarded to the leader), is read from the keystore once.
func TestKeyLoadedOncePerCluster(t *testing.T) {
	ctx := context.Background()
	leader, st, _ := newTestService(t)
	slow := &slowReads{Store: st}
	leader.cfg.Store = slow
	nodes := []*Service{leader}
	for range 3 {
		nodes = append(nodes, newFollower(t, leader, time.Now))
	}
	kv, err := crypto.NewKeyVersion(crypto.AES256, "kes", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := crypto.EncodeKeyVersion(kv)
	if err := st.Create(ctx, "from-kes", v); err != nil {
		t.Fatal(err)
	}
	slow.gets.Store(0) // the followers read the seal key when they unsealed
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := n.GenerateKey(ctx, DefaultEnclave, "from-kes", nil); err != nil {
					t.Errorf("generate: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if n := slow.gets.Load(); n != 1 {
		t.Fatalf("keystore reads = %d for one key first used on %d nodes at once, want 1", n, len(nodes))
	}
}
