package server

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Memory policy (docs/operations.md, "Memory after an attack").
const (
	// defaultMemoryLimit is the soft memory limit when neither GOMEMLIMIT
	// nor limits.memory is set and no cgroup memory limit is found.
	defaultMemoryLimit = 1 << 30
	// cgroupShare is the fraction of a cgroup memory limit used as the
	// default soft limit, leaving room for non-Go memory and page cache.
	cgroupShare = 0.75
	// reliefInterval is how often the relief loop looks at the heap.
	reliefInterval = 15 * time.Second
	// reliefSlack is how far the retained memory may exceed its lowest
	// value before an idle node collects garbage to give it back.
	reliefSlack = 64 << 20
	// minHeapGoal is the smallest heap goal the GC tuner lets the runtime
	// aim for (see tuneGC).
	minHeapGoal = 16 << 20
	// tuneInterval is how often tuneGC looks at the live heap. GOGC is a
	// ratio, so a live heap that jumps (an attack, a burst of requests)
	// meets a raised GOGC until the next look: the interval bounds that
	// overshoot to the allocations of a quarter second.
	tuneInterval = 250 * time.Millisecond
)

// memoryLimit returns the soft memory limit to set and where it comes from;
// 0 means leave the runtime's setting alone. configured is limits.memory
// (0: automatic, negative: off).
func memoryLimit(configured int64, getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, "GOMEMLIMIT"
	}
	switch {
	case configured < 0:
		return 0, "limits.memory off"
	case configured > 0:
		return configured, "limits.memory"
	}
	if b, err := readFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return int64(float64(v) * cgroupShare), "cgroup memory.max"
		}
	}
	return defaultMemoryLimit, "default"
}

// startMemoryGuard sets the process's soft memory limit (see memoryLimit)
// and runs the relief loop until ctx ends. The limit is process-wide: the
// last node started in a process sets it.
func (s *Server) startMemoryGuard(ctx context.Context, reg prometheus.Registerer) {
	limit, source := memoryLimit(s.cfg.Limits.MemoryLimit, os.Getenv, os.ReadFile)
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	s.log.Debug("memory limit", "bytes", limit, "source", source)
	reliefs := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keyraft", Subsystem: "memory", Name: "relief_total",
		Help: "Garbage collections started because an idle node held much more memory than before.",
	})
	if reg != nil {
		_ = reg.Register(reliefs) // a second node in one process shares the first's counter
	}
	go relieveMemory(ctx, reliefInterval, reliefs.Inc, s.log)
	if os.Getenv("GOGC") == "" {
		go tuneGC(ctx, tuneInterval, minHeapGoal, s.log)
	}
}

// gcPercent is the GOGC value that makes the heap goal at least minGoal
// for a live heap of live bytes, and never less than Go's default 100.
func gcPercent(live, minGoal uint64) int {
	if live == 0 || live*2 >= minGoal {
		return 100
	}
	return int((minGoal*100+live-1)/live) - 100
}

// tuneGC keeps the garbage collector's heap goal at least minGoal: every
// interval it sets GOGC (debug.SetGCPercent) from the live heap with
// gcPercent. With Go's default, a node whose live heap is a few MB (a KMS
// serving a few keys) collects every 2 MB allocated, 25 times a second
// under load, and each cycle scans the stacks and globals of Raft, bbolt
// and the AWS SDK: that was 5 % of the CPU of a generate/decrypt request.
// With a 16 MiB floor it collects about a sixth as often, for at most
// 12 MiB more heap; from a live heap of 8 MiB on it is Go's default. (A
// 32 MiB floor saved little more CPU but held 20 MB more RSS after an
// attack.) The soft memory limit still caps the heap, and GOGC in the
// environment turns the tuner off (docs/operations.md).
func tuneGC(ctx context.Context, interval time.Duration, minGoal uint64, log hclog.Logger) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			want := gcPercent(sample[0].Value.Uint64(), minGoal)
			// Only changes of more than an eighth are applied.
			if current < 0 || want > current+current/8 || want < current-current/8 {
				debug.SetGCPercent(want)
				log.Trace("GC percent", "live", sample[0].Value.Uint64(), "percent", want)
				current = want
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relieveMemory gives memory back to the OS after a burst (an attack, a
// load spike). The runtime returns freed memory only after a garbage
// collection has lowered its heap goal, and an idle node may not collect
// for two minutes. So every interval: if no collection ran since the last
// look and the retained memory (mapped minus released to the OS) is more
// than reliefSlack above the lowest retained value seen, it runs one; the
// background scavenger then returns the memory. Under load collections run
// by themselves and this does nothing. relieved is called after each such
// collection.
func relieveMemory(ctx context.Context, interval time.Duration, relieved func(), log hclog.Logger) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	read := func() (retained, cycles uint64) {
		metrics.Read(samples)
		for _, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0, math.MaxUint64
			}
		}
		return samples[0].Value.Uint64() - samples[1].Value.Uint64(), samples[2].Value.Uint64()
	}
	floor, lastCycles := read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		retained, cycles := read()
		floor = min(floor, retained)
		if cycles == lastCycles && retained > floor+reliefSlack {
			runtime.GC()
			relieved()
			log.Debug("memory relief", "retained", retained, "floor", floor)
			_, cycles = read()
		}
		lastCycles = cycles
	}
}
