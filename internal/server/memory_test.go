package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/internal/testutil"
)

func TestMemoryLimitChoice(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	noCgroup := func(string) ([]byte, error) { return nil, errors.New("none") }
	cgroup := func(s string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(s), nil }
	}
	for _, tc := range []struct {
		name       string
		configured int64
		getenv     func(string) string
		readFile   func(string) ([]byte, error)
		want       int64
	}{
		{"GOMEMLIMIT wins", 1 << 20, env("100MiB"), cgroup("1000\n"), 0},
		{"configured", 1 << 20, env(""), cgroup("1000\n"), 1 << 20},
		{"off", -1, env(""), cgroup("1000\n"), 0},
		{"cgroup", 0, env(""), cgroup("4000000000\n"), 3000000000},
		{"cgroup unlimited", 0, env(""), cgroup("max\n"), defaultMemoryLimit},
		{"default", 0, env(""), noCgroup, defaultMemoryLimit},
	} {
		if got, src := memoryLimit(tc.configured, tc.getenv, tc.readFile); got != tc.want {
			t.Errorf("%s: %d (%s), want %d", tc.name, got, src, tc.want)
		}
	}
}

func TestRelieveMemoryCollectsWhenIdleAndBloated(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reliefs atomic.Int32
	done := make(chan struct{})
	go func() {
		relieveMemory(ctx, 20*time.Millisecond, func() { reliefs.Add(1) }, hclog.NewNullLogger())
		close(done)
	}()
	// Retain well over reliefSlack, then drop it: an idle bloated heap.
	bloat(128 << 20)
	testutil.Eventually(t, 30*time.Second, "a relief collection for an idle bloated heap", func() bool { return reliefs.Load() > 0 })
	cancel()
	<-done
}

var sink [][]byte

// bloat allocates and touches n bytes in 1 MiB pieces, holds them all,
// then drops them.
func bloat(n int) {
	for range n >> 20 {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		sink = append(sink, b)
	}
	sink = nil
}

func TestGCPercentKeepsTheHeapGoalFloor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100},              // nothing measured yet: Go's default
		{2 * mib, 1500},       // goal 2 MiB × 16 = 32 MiB
		{3 * mib, 967},        // goal just above 32 MiB
		{16 * mib, 100},       // the default already reaches the floor
		{1024 * mib, 100},     // a large heap keeps the default
		{15 * mib, 114},       // just below: a little above the default
		{32*mib + 1, 100},     // above the floor
		{1, 32*mib*100 - 100}, // tiny heaps get a proportionally large percent
	} {
		got := gcPercent(c.live, 32*mib)
		if got != c.want {
			t.Errorf("gcPercent(%d) = %d, want %d", c.live, got, c.want)
		}
		if c.live > 0 && uint64(got+100)*c.live/100 < 32*mib && c.live < 16*mib {
			t.Errorf("gcPercent(%d) = %d: goal %d below the floor", c.live, got, uint64(got+100)*c.live/100)
		}
	}
}
