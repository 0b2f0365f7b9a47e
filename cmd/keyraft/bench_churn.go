package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/keyraft/keyraft/api/client"
)

// churnOp performs churn operation k (from 0). Operations come in pairs:
// 2n creates a key and 2n+1 deletes it again.
type churnOp func(ctx context.Context, k int64) error

// churnMaxInFlight is the default bound on the churn pairs in flight.
const churnMaxInFlight = 64

// churnPlan is a write load beside the measured requests (--churn):
// operation k is due at scheduleOffset(k, rate), from the start of the load
// until the measured window closes. See runChurn.
type churnPlan struct {
	rate        float64
	op          churnOp
	maxInFlight int // pairs; 0 is churnMaxInFlight
}

// churnStats counts the churn operations due in the measured window.
type churnStats struct {
	done    int64           // succeeded
	failed  int64           // returned an error (other than the run's end)
	dropped int64           // not sent: churnPlan.maxInFlight pairs were in flight (2 per pair)
	lat     []time.Duration // how long the successful ones took, sorted
}

// churnResult is the JSON form of the churn figures of `keyraft bench`.
type churnResult struct {
	Rate      float64 `json:"rate"`    // operations/s asked for (creates and deletes)
	Done      int64   `json:"done"`    // operations due in the window that succeeded
	Failed    int64   `json:"failed"`  // operations due in the window that failed
	Dropped   int64   `json:"dropped"` // operations due in the window not sent (too many in flight)
	PerSecond float64 `json:"done_per_second"`
	P50ms     float64 `json:"p50_ms"` // latency of the successful operations, from their send
	P99ms     float64 `json:"p99_ms"`
}

// churnKeyName returns the name of the n-th churn key: <name>-churn-<n>.
func churnKeyName(name string, n int64) string {
	return name + "-churn-" + strconv.FormatInt(n, 10)
}

// newChurnOp returns the churn operations against c: 2n creates
// <name>-churn-<n>, 2n+1 deletes it.
func newChurnOp(c *client.Client, name string) churnOp {
	return func(ctx context.Context, k int64) error {
		key := churnKeyName(name, k/2)
		if k%2 == 0 {
			return c.CreateKey(ctx, key)
		}
		return c.DeleteKey(ctx, key)
	}
}

// sweepChurnKeys deletes the churn keys of name that exist, left over by a
// run that was interrupted between a create and its delete, so that the
// run's creates do not fail with "key already exists".
func sweepChurnKeys(ctx context.Context, c *client.Client, name string) error {
	keys, err := c.ListAllKeys(ctx, name+"-churn-")
	if err != nil {
		return fmt.Errorf("failed to list left-over churn keys: %w", err)
	}
	for _, k := range keys {
		if err := c.DeleteKey(ctx, k); err != nil && !errors.Is(err, client.ErrKeyNotFound) {
			return fmt.Errorf("failed to delete left-over churn key %q: %w", k, err)
		}
	}
	return nil
}

// runChurn sends p's operations on a fixed schedule, operation k due at
// scheduleOffset(k, p.rate) on clock, whether or not earlier pairs are
// answered: each pair runs in a goroutine of its own, which sends the
// create at its due time and the delete at its due time or, if the create
// took longer, once the create is answered (so a delete never overtakes its
// create). A pair due while p.maxInFlight pairs are in flight is dropped.
// No pair is started once stop is closed, the window has closed or ctx has
// ended; runChurn returns when the started pairs are done, every started
// create followed by its delete (the ones due after the window uncounted),
// so that no churn key is left behind unless ctx ended. Only operations due
// in the window are counted; one that failed because ctx ended is not.
func runChurn(ctx context.Context, clock *benchClock, p churnPlan, stop <-chan struct{}) churnStats {
	limit := p.maxInFlight
	if limit <= 0 {
		limit = churnMaxInFlight
	}
	var (
		mu sync.Mutex
		s  churnStats
		wg sync.WaitGroup
	)
	// send performs operation k, due at due, and counts it.
	send := func(k int64, due time.Duration) {
		t := clock.now()
		err := p.op(ctx, k)
		d := clock.now() - t
		if !clock.inWindow(due) || ctx.Err() != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			s.failed++
			return
		}
		s.done++
		s.lat = append(s.lat, d)
	}
	slots := make(chan struct{}, limit)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := int64(0); ; k += 2 {
		due := scheduleOffset(k, p.rate)
		if wait := due - clock.now(); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
			case <-ctx.Done():
			}
		}
		if isClosed(stop) || ctx.Err() != nil || int64(due) >= clock.end.Load() {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			if clock.inWindow(due) {
				mu.Lock()
				s.dropped += 2
				mu.Unlock()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			send(k, due)
			delDue := scheduleOffset(k+1, p.rate)
			if err := sleepUntil(ctx, clock, delDue, stop); err != nil {
				return // the run ended: no delete
			}
			send(k+1, delDue)
		}()
	}
	wg.Wait()
	slices.Sort(s.lat)
	return s
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sleepUntil waits until t on clock, or until stop is closed (returning
// nil), or ctx ends (returning its error).
func sleepUntil(ctx context.Context, clock *benchClock, t time.Duration, stop <-chan struct{}) error {
	wait := t - clock.now()
	if wait <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-stop:
	case <-ctx.Done():
	}
	return ctx.Err()
}

// startChurn starts p.churn, if set, in a goroutine of its own. stop ends
// it (call it once, when the window has closed); wait waits for its end and
// returns its counts (zero without p.churn).
func (p benchPlan) startChurn(ctx context.Context, clock *benchClock) (stop func(), wait func() churnStats) {
	if p.churn == nil {
		return func() {}, func() churnStats { return churnStats{} }
	}
	stopCh := make(chan struct{})
	done := make(chan churnStats, 1)
	go func() { done <- runChurn(ctx, clock, *p.churn, stopCh) }()
	return func() { close(stopCh) }, func() churnStats { return <-done }
}

// result returns the JSON form of s for a run at rate operations/s over a
// window of seconds.
func (s churnStats) result(rate, seconds float64) *churnResult {
	r := &churnResult{Rate: rate, Done: s.done, Failed: s.failed, Dropped: s.dropped}
	if seconds > 0 {
		r.PerSecond = float64(s.done) / seconds
	}
	if n := len(s.lat); n > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.P50ms, r.P99ms = ms(s.lat[n/2]), ms(s.lat[(n-1)*99/100])
	}
	return r
}
