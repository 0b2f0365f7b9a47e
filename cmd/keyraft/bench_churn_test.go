package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churnRecorder is a churnOp that records the operations it was called
// with, when each started and ended (on clock), and fails a delete that
// starts before its create ended. hook, if set, runs first.
type churnRecorder struct {
	mu     sync.Mutex
	clock  *benchClock
	starts map[int64]time.Duration
	ends   map[int64]time.Duration
	hook   func(ctx context.Context, k int64) error
}

func newChurnRecorder(clock *benchClock) *churnRecorder {
	return &churnRecorder{clock: clock, starts: map[int64]time.Duration{}, ends: map[int64]time.Duration{}}
}

func (r *churnRecorder) op(ctx context.Context, k int64) error {
	r.mu.Lock()
	r.starts[k] = r.clock.now()
	_, created := r.ends[k-1]
	r.mu.Unlock()
	var err error
	if k%2 == 1 && !created {
		err = fmt.Errorf("delete %d before its create ended", k)
	} else if r.hook != nil {
		err = r.hook(ctx, k)
	}
	r.mu.Lock()
	r.ends[k] = r.clock.now()
	r.mu.Unlock()
	return err
}

// check verifies the recorded run of p against s: every create was
// followed by its delete, nothing due in the window started before it was
// due (a delete due later runs as soon as the window closes), and s counts
// exactly the operations due in the window, wantFailed of them failed.
func (r *churnRecorder) check(t *testing.T, p churnPlan, s churnStats, wantFailed int64) {
	t.Helper()
	var inWindow int64
	for k, start := range r.starts {
		if _, ok := r.starts[k^1]; !ok {
			t.Errorf("op %d ran without the other op of its pair", k)
		}
		if due := scheduleOffset(k, p.rate); start < due && int64(due) < r.clock.end.Load() {
			t.Errorf("op %d started at %v, before its due time %v", k, start, due)
		}
		if r.clock.inWindow(scheduleOffset(k, p.rate)) {
			inWindow++
		}
	}
	if s.failed != wantFailed || s.done != inWindow-wantFailed || len(s.lat) != int(s.done) {
		t.Errorf("%d done (%d latencies), %d failed; want %d, %d (%d ops ran, %d due in the window)",
			s.done, len(s.lat), s.failed, inWindow-wantFailed, wantFailed, len(r.starts), inWindow)
	}
}

// closeWindow closes the clock's window now and closes stop, as
// benchPlan.window does at the end of the measured window.
func closeWindow(c *benchClock, stop chan struct{}) {
	c.end.Store(int64(c.now()))
	close(stop)
}

// windowOpen returns a clock whose window opens at from (since its base).
func windowOpen(from time.Duration) *benchClock {
	c := newBenchClock()
	c.start.Store(int64(from))
	return c
}

func TestRunChurnPairsAndCounts(t *testing.T) {
	// The window closes during op 20 (a create): its delete still runs.
	// Ops 0-5 are due in the warm-up and not counted; op 7 fails.
	p := churnPlan{rate: 4000}
	clock := windowOpen(scheduleOffset(6, p.rate))
	stop := make(chan struct{})
	r := newChurnRecorder(clock)
	r.hook = func(_ context.Context, k int64) error {
		switch k {
		case 7:
			return errors.New("boom")
		case 20:
			closeWindow(clock, stop)
		}
		return nil
	}
	p.op = r.op
	s := runChurn(context.Background(), clock, p, stop)
	for k := int64(0); k <= 21; k++ {
		if _, ok := r.starts[k]; !ok {
			t.Errorf("op %d did not run", k)
		}
	}
	r.check(t, p, s, 1)
	if s.dropped != 0 {
		t.Errorf("%d dropped", s.dropped)
	}
}

func TestRunChurnOverlapsSlowWrites(t *testing.T) {
	// Creates that are not answered until three of them are in flight:
	// pairs overlap instead of waiting for each other. The delete of each
	// waits for its create.
	p := churnPlan{rate: 2000}
	clock := windowOpen(0)
	stop := make(chan struct{})
	three := make(chan struct{})
	var creates atomic.Int64
	r := newChurnRecorder(clock)
	r.hook = func(ctx context.Context, k int64) error {
		if k%2 == 1 {
			return nil
		}
		if creates.Add(1) == 3 {
			closeWindow(clock, stop)
			close(three)
		}
		select {
		case <-three:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.op = r.op
	s := runChurn(context.Background(), clock, p, stop)
	if len(r.starts) < 6 {
		t.Errorf("%d ops ran, want at least 6 (three pairs)", len(r.starts))
	}
	r.check(t, p, s, 0)
}

func TestRunChurnDropsOverLimit(t *testing.T) {
	// One pair at a time, the first create taking 10 ms at a pair per
	// millisecond: the pairs due meanwhile are dropped, two ops each.
	p := churnPlan{rate: 2000, maxInFlight: 1}
	clock := windowOpen(0)
	stop := make(chan struct{})
	r := newChurnRecorder(clock)
	r.hook = func(ctx context.Context, k int64) error {
		switch {
		case k == 0:
			select {
			case <-time.After(10 * time.Millisecond): // a slow write
			case <-ctx.Done():
			}
		case k > 0 && k%2 == 0:
			closeWindow(clock, stop)
		}
		return nil
	}
	p.op = r.op
	s := runChurn(context.Background(), clock, p, stop)
	if s.dropped < 10 || s.dropped%2 != 0 {
		t.Errorf("%d dropped; want at least 10 (5 pairs), in pairs", s.dropped)
	}
	// The first pair and the one after the slow create; one more if the
	// dispatcher was held up between its stop check and starting the pair.
	if n := len(r.starts); n != 4 && n != 6 {
		t.Errorf("%d ops ran, want 4 (the first pair and the one after the slow create)", n)
	}
	r.check(t, p, s, 0)
}

func TestRunChurnContextEnd(t *testing.T) {
	// The run's end (ctx) stops the churn at once, without the pair's
	// delete, and the operation it cut short is not a failure.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := churnPlan{rate: 20} // the next pair is due after 100 ms
	clock := windowOpen(0)
	r := newChurnRecorder(clock)
	r.hook = func(ctx context.Context, _ int64) error {
		cancel()
		return ctx.Err()
	}
	p.op = r.op
	s := runChurn(ctx, clock, p, make(chan struct{}))
	if len(r.starts) != 1 {
		t.Errorf("%d ops ran, want 1 (the create that saw the end)", len(r.starts))
	}
	if s.done != 0 || s.failed != 0 {
		t.Errorf("%d done, %d failed; want 0, 0", s.done, s.failed)
	}
}

func TestRunBenchWithChurn(t *testing.T) {
	// The churn runs beside both loops and its operations are not requests.
	for _, rate := range []float64{0, 2000} {
		var mu sync.Mutex
		var ks []int64
		churn := &churnPlan{rate: 500, op: func(_ context.Context, k int64) error {
			mu.Lock()
			defer mu.Unlock()
			ks = append(ks, k)
			return nil
		}}
		var reqs atomic.Int64
		op := func(context.Context, int) error { reqs.Add(1); runtime.Gosched(); return nil }
		p := benchPlan{warmup: 20 * time.Millisecond, duration: 100 * time.Millisecond, rate: rate, churn: churn}
		s, err := runBench(context.Background(), p, []benchOp{op, op})
		if err != nil {
			t.Fatal(err)
		}
		if s.churn.done == 0 || s.churn.failed != 0 {
			t.Errorf("rate %v: churn %+v; want some done, none failed", rate, s.churn)
		}
		if s.churn.done > int64(len(ks)) || len(ks)%2 != 0 {
			t.Errorf("rate %v: %d churn ops counted of %d run; want at most all, in whole pairs", rate, s.churn.done, len(ks))
		}
		if int64(len(s.lat)) > reqs.Load() {
			t.Errorf("rate %v: %d latencies from %d requests", rate, len(s.lat), reqs.Load())
		}
	}
}

func TestChurnKeyNameAndResult(t *testing.T) {
	if got := churnKeyName("kb", 12); got != "kb-churn-12" {
		t.Errorf("churnKeyName = %q", got)
	}
	lat := make([]time.Duration, 500)
	for i := range lat {
		lat[i] = time.Duration(i) * time.Millisecond
	}
	r := churnStats{done: 500, failed: 2, dropped: 4, lat: lat}.result(100, 5)
	if *r != (churnResult{Rate: 100, Done: 500, Failed: 2, Dropped: 4, PerSecond: 100, P50ms: 250, P99ms: 494}) {
		t.Errorf("result = %+v", *r)
	}
	var out termBuffer
	printBench(printer{out: &out, tty: true}, benchResult{Op: "generate", Endpoints: 1, Churn: r})
	if want := "churn     500 creates/deletes done (100.0/s of 100/s asked), 2 failed, 4 dropped; p50 250.00 ms, p99 494.00 ms"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}
