package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// lateThreshold is how far behind its scheduled time an open-loop request
// may be sent before it counts as late.
const lateThreshold = time.Millisecond

// benchOp sends one request; i counts the calling worker's requests from 0.
type benchOp func(ctx context.Context, i int) error

// benchPlan says how a run is driven. One worker runs per op.
type benchPlan struct {
	warmup   time.Duration // load before the measured window, not counted
	duration time.Duration // the measured window
	rate     float64       // requests per second in total (open loop); 0 for a closed loop
	// before and after, if set, are called right before the measured window
	// starts and right after it ends (with the load still running at the
	// start), to take snapshots of the servers. An error aborts the run.
	before, after func() error
	// churn, if set, is a write load run beside the ops from the start of
	// the load until the window closes (see runChurn); not in the latencies.
	churn *churnPlan
}

// runStats is what a run measured within its window.
type runStats struct {
	elapsed time.Duration    // length of the measured window
	lat     []time.Duration  // latencies of the successful requests, sorted
	errors  int64            // failed requests
	samples map[string]int64 // failed requests by error message (a few distinct ones)
	dropped int64            // open loop: scheduled requests not sent, every worker being busy
	late    int64            // open loop: requests sent more than lateThreshold after their scheduled time
	churn   churnStats       // the churn operations due in the window
}

// summarize fills the request count, rate and latency fields of res.
func (s runStats) summarize(res *benchResult) {
	res.Seconds = s.elapsed.Seconds()
	res.Requests, res.Errors = int64(len(s.lat)), s.errors
	res.ErrorSamples = s.samples
	res.Dropped, res.Late = s.dropped, s.late
	if n := len(s.lat); n > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.PerSecond = float64(n) / s.elapsed.Seconds()
		res.P50ms, res.P99ms, res.MaxMs = ms(s.lat[n/2]), ms(s.lat[(n-1)*99/100]), ms(s.lat[n-1])
	}
}

// workerStats is one worker's share of runStats.
type workerStats struct {
	lat     []time.Duration
	errors  int64
	samples map[string]int64
}

// maxErrorSamples bounds the distinct error messages a worker keeps.
const maxErrorSamples = 8

// fail counts a failed request and keeps its message among the samples.
func (w *workerStats) fail(err error) {
	w.errors++
	msg := err.Error()
	if _, ok := w.samples[msg]; !ok && len(w.samples) >= maxErrorSamples {
		msg = "(other errors)"
	}
	if w.samples == nil {
		w.samples = map[string]int64{}
	}
	w.samples[msg]++
}

// merge combines the workers' results.
func merge(ws []workerStats, elapsed time.Duration) runStats {
	s := runStats{elapsed: elapsed}
	for _, w := range ws {
		s.lat = append(s.lat, w.lat...)
		s.errors += w.errors
		for msg, n := range w.samples {
			if s.samples == nil {
				s.samples = map[string]int64{}
			}
			s.samples[msg] += n
		}
	}
	slices.Sort(s.lat)
	return s
}

// benchClock measures the run on the monotonic clock from its start and
// holds the measured window's bounds, read by the workers without a lock.
type benchClock struct {
	base       time.Time
	start, end atomic.Int64 // window bounds since base; math.MaxInt64 until set
}

func newBenchClock() *benchClock {
	c := &benchClock{base: time.Now()}
	c.start.Store(math.MaxInt64)
	c.end.Store(math.MaxInt64)
	return c
}

// now returns the time since the run started.
func (c *benchClock) now() time.Duration { return time.Since(c.base) }

// inWindow reports whether t (since base) lies in the measured window.
func (c *benchClock) inWindow(t time.Duration) bool {
	return int64(t) >= c.start.Load() && int64(t) < c.end.Load()
}

// window waits out the warm-up, calls p.before and opens the window, waits
// for the duration and closes the window (early when ctx ends), and calls
// stop. It returns the error of the warm-up's ctx or of p.before; then the
// window has been closed empty.
func (p benchPlan) window(ctx context.Context, c *benchClock, stop func()) error {
	defer stop()
	if err := sleepCtx(ctx, p.warmup); err != nil {
		c.end.Store(0)
		return err
	}
	if p.before != nil {
		if err := p.before(); err != nil {
			c.end.Store(0)
			return err
		}
	}
	c.start.Store(int64(c.now()))
	_ = sleepCtx(ctx, p.duration) // a cancelled run reports what it measured
	c.end.Store(int64(c.now()))
	return nil
}

// elapsed returns the length of the closed window.
func (c *benchClock) elapsed() time.Duration { return time.Duration(c.end.Load() - c.start.Load()) }

// sleepCtx waits for d or until ctx ends, returning ctx's error then.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runBench drives the ops by p: a closed loop (every worker sends its next
// request when the previous one is answered) when p.rate is 0, else an open
// loop. Only requests started within the measured window count.
func runBench(ctx context.Context, p benchPlan, ops []benchOp) (runStats, error) {
	if p.rate > 0 {
		return runOpen(ctx, p, ops)
	}
	return runClosed(ctx, p, ops)
}

// runClosed runs every op in a loop of its own. Requests still running when
// the window closes are cancelled and not counted, as errors or otherwise.
func runClosed(ctx context.Context, p benchPlan, ops []benchOp) (runStats, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	clock := newBenchClock()
	workers := make([]workerStats, len(ops))
	var wg sync.WaitGroup
	for w, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &workers[w]
			for i := 0; runCtx.Err() == nil; i++ {
				t := clock.now()
				err := op(runCtx, i)
				if runCtx.Err() != nil {
					break // the run ended mid-request: neither a result nor an error
				}
				if !clock.inWindow(t) {
					continue
				}
				if err != nil {
					ws.fail(err)
					continue
				}
				ws.lat = append(ws.lat, clock.now()-t)
			}
		}()
	}
	stopChurn, waitChurn := p.startChurn(ctx, clock)
	err := p.window(ctx, clock, func() { cancel(); stopChurn() })
	if err == nil && p.after != nil {
		err = p.after()
	}
	wg.Wait()
	cs := waitChurn()
	if err != nil {
		return runStats{}, err
	}
	s := merge(workers, clock.elapsed())
	s.churn = cs
	return s, nil
}

// scheduleOffset returns when, after the start of an open-loop run, its
// k-th request is due at rate requests per second.
func scheduleOffset(k int64, rate float64) time.Duration {
	return time.Duration(float64(k) * float64(time.Second) / rate)
}

// openJob is one scheduled request of an open-loop run.
type openJob struct {
	due      time.Duration // the scheduled time, since the run's start
	measured bool          // due within the measured window
}

// dispatchStats counts what the open-loop dispatcher did in the window.
type dispatchStats struct{ dropped, late int64 }

// runOpen sends requests on a fixed schedule of p.rate per second in total,
// whether or not earlier ones were answered. A request goes to an idle
// worker; when every worker is busy at its due time it is dropped (so at
// most len(ops) requests are in flight). Latency is measured from the due
// time, not from the send, so a late send shows in the latency instead of
// being hidden (coordinated omission). Requests due in the window are waited
// for after it closes, and their server CPU is in the window's figure.
func runOpen(ctx context.Context, p benchPlan, ops []benchOp) (runStats, error) {
	clock := newBenchClock()
	jobs := make(chan openJob)
	workers := make([]workerStats, len(ops))
	var wg sync.WaitGroup
	for w, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &workers[w]
			i := 0
			for j := range jobs {
				err := op(ctx, i)
				i++
				switch {
				case !j.measured || ctx.Err() != nil:
				case err != nil:
					ws.fail(err)
				default:
					ws.lat = append(ws.lat, clock.now()-j.due)
				}
			}
		}()
	}
	stop := make(chan struct{})
	done := make(chan dispatchStats)
	go func() { done <- dispatch(clock, p.rate, jobs, stop) }()
	stopChurn, waitChurn := p.startChurn(ctx, clock)

	err := p.window(ctx, clock, func() { close(stop); stopChurn() })
	ds := <-done
	wg.Wait()
	cs := waitChurn()
	if err == nil && p.after != nil {
		err = p.after()
	}
	if err != nil {
		return runStats{}, err
	}
	s := merge(workers, clock.elapsed())
	s.dropped, s.late, s.churn = ds.dropped, ds.late, cs
	return s, nil
}

// dispatch offers the requests due at rate per second to the workers on
// jobs until stop is closed and the window's last due request is offered,
// then closes jobs. An offer nobody takes at once is dropped; a request
// offered later than lateThreshold after its due time (the dispatcher fell
// behind) is late. Only requests due in the window are counted.
func dispatch(clock *benchClock, rate float64, jobs chan<- openJob, stop <-chan struct{}) dispatchStats {
	defer close(jobs)
	var ds dispatchStats
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := int64(0); ; k++ {
		due := scheduleOffset(k, rate)
		if wait := due - clock.now(); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
			}
		}
		if int64(due) >= clock.end.Load() {
			return ds
		}
		job := openJob{due: due, measured: clock.inWindow(due)}
		select {
		case jobs <- job:
			if job.measured && clock.now()-due > lateThreshold {
				ds.late++
			}
		default:
			if job.measured {
				ds.dropped++
			}
		}
	}
}
