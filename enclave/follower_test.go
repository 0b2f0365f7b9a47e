package enclave

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
)

// directForwarder hands ops straight to the leader's Service, as the
// cluster RPC channel does.
type directForwarder struct{ leader *Service }

func (d directForwarder) Forward(ctx context.Context, op Op) (Result, error) {
	return d.leader.Execute(ctx, op)
}

// newFollower returns a Service that shares the leader's FSM (as a
// replica would hold the same state) but is not the leader.
func newFollower(t *testing.T, leader *Service, now func() time.Time) *Service {
	t.Helper()
	f, err := New(Config{
		FSM: leader.cfg.FSM, Store: leader.cfg.Store, Admin: admin,
		Proposer:  &localProposer{f: leader.cfg.FSM, leader: false},
		Forwarder: directForwarder{leader},
		Cache:     leader.cfg.Cache,
		Now:       now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Unseal(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFollowerForwardsWritesAndReauthorizes(t *testing.T) {
	ctx := context.Background()
	leader, _, _ := newTestService(t)
	follower := newFollower(t, leader, time.Now)
	if err := follower.CreateKey(ctx, DefaultEnclave, "fwd", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.DescribeKey(ctx, DefaultEnclave, "fwd"); err != nil {
		t.Fatal(err)
	}
	// The leader authorizes the forwarded identity again.
	res, err := leader.Execute(ctx, Op{Kind: OpDeleteKey, Enclave: DefaultEnclave, Name: "fwd", Identity: "someone-else"})
	if err != nil || res.Err == nil || *res.Err != kes.ErrNotAllowed {
		t.Fatalf("forwarded delete by a stranger = %+v, %v", res, err)
	}
	if err := follower.CreateKey(ctx, DefaultEnclave, "fwd", admin); !errors.Is(err, kes.ErrKeyExists) {
		t.Fatalf("forwarded duplicate create: %v", err)
	}
}

// TestUnusedDropsOnlyPlaintext: Cache.Unused and Cache.Any bound each
// node's unsealed copy; the sealed record stays in the FSM, and the next
// request unseals it again without a keystore call or a Raft command.
func TestUnusedDropsOnlyPlaintext(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	leader, st, f := newTestService(t)
	leader.cfg.Cache.Unused = time.Minute
	leader.cfg.Cache.Any = 5 * time.Minute
	leader.now = now
	follower := newFollower(t, leader, now)

	for _, name := range []string{"hot", "cold"} {
		if err := leader.CreateKey(ctx, DefaultEnclave, name, admin); err != nil {
			t.Fatal(err)
		}
	}
	use := func(s *Service, name string) {
		t.Helper()
		if _, _, err := s.GenerateKey(ctx, DefaultEnclave, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	use(follower, "hot")
	use(follower, "cold")
	held, _ := follower.cache.get(DefaultEnclave, "cold", mustKey(t, f, "cold").Index, 0)
	held.release() // only checks the entry exists; the cache keeps its reference
	st.ResetCalls()
	applied := f.AppliedIndex()

	clock.Add(int64(50 * time.Second))
	use(follower, "hot")
	clock.Add(int64(30 * time.Second)) // hot: used 30s ago; cold: 80s ago
	if n := follower.sweep(); n != 1 {
		t.Fatalf("sweep dropped %d unsealed keys, want 1 (cold)", n)
	}
	if got := follower.CacheStats().Unsealed; got != 1 {
		t.Fatalf("%d unsealed keys after the sweep, want 1", got)
	}
	if held.keys.List[0].Key.Key != [32]byte{} {
		t.Fatal("the dropped key material was not zeroed")
	}
	for _, name := range []string{"hot", "cold"} {
		if _, ok := f.Key(DefaultEnclave, name); !ok {
			t.Fatalf("sealed record of %s left the FSM", name)
		}
	}
	unseals := follower.CacheStats().Unseals
	use(follower, "cold")
	if got := follower.CacheStats().Unseals; got != unseals+1 {
		t.Fatalf("unseals %d -> %d, want one more", unseals, got)
	}
	// Any bounds a copy's age even while it is used.
	clock.Add(int64(5*time.Minute + time.Second))
	use(follower, "hot")
	if got := follower.CacheStats().Unseals; got != unseals+2 {
		t.Fatalf("a copy older than Any was served: unseals %d, want %d", got, unseals+2)
	}
	if calls := st.Calls(); calls.Total() != 0 {
		t.Fatalf("keystore calls while serving cached keys: %+v", calls)
	}
	if got := f.AppliedIndex(); got != applied {
		t.Fatalf("Raft applies while serving cached keys: index %d -> %d", applied, got)
	}
}

func mustKey(t *testing.T, f interface {
	Key(string, string) (fsm.KeyRecord, bool)
}, name string) fsm.KeyRecord {
	t.Helper()
	r, ok := f.Key(DefaultEnclave, name)
	if !ok {
		t.Fatalf("no record of %s", name)
	}
	return r
}
