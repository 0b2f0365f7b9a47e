package enclave

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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

func TestFollowerUseKeepsKeyCached(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	leader, _, f := newTestService(t)
	leader.cfg.Cache.Unused = time.Minute
	leader.now = now
	follower := newFollower(t, leader, now)

	for _, name := range []string{"hot", "cold"} {
		if err := leader.CreateKey(ctx, DefaultEnclave, name, admin); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(int64(50 * time.Second))
	if _, _, err := follower.GenerateKey(ctx, DefaultEnclave, "hot", nil); err != nil {
		t.Fatal(err)
	}
	follower.reportUse(ctx)
	clock.Add(int64(30 * time.Second)) // 80s after creation, 30s after use
	leader.evictUnused(ctx)
	if _, ok := f.Key(DefaultEnclave, "hot"); !ok {
		t.Fatal("key used on a follower was evicted")
	}
	if _, ok := f.Key(DefaultEnclave, "cold"); ok {
		t.Fatal("unused key was not evicted")
	}
}
