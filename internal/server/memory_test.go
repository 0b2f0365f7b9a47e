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
