package api

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Route deadlines without a timer per request. A route's deadline bounds
// two things: the backend calls a handler makes (through the request's
// context) and the connection's reads and writes for the request (a body
// that trickles in, a client that does not read the answer). Go's way of
// doing both, context.WithTimeout plus read and write deadlines, costs
// three timers per request and, over HTTP/2, two messages to the
// connection's serve loop: 2-3 % of the CPU of a generate or decrypt
// request, which almost never comes near its deadline. Instead:
//
//   - the request's context is a deadlineCtx, which reports the deadline
//     and, once it has passed, context.DeadlineExceeded without a timer; a
//     timer is made only if something waits on Done (a keystore or Raft
//     call on a cache miss);
//   - a sweeper enforces the deadline on the connection: it runs while
//     requests are in progress, every sweepInterval, and sets the read and
//     write deadline of every request past its deadline to now.
//
// A deadline is thus enforced at most sweepInterval late.

// sweepInterval is how often the sweeper looks for expired requests.
const sweepInterval = 100 * time.Millisecond

// deadlineCtx is the context of a request on a route with a deadline. It
// is safe for concurrent use.
type deadlineCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	inner  context.Context    // nil until Done or end; then it answers Done and Err
	cancel context.CancelFunc // inner's, if Done made it
}

// endedCtx is the inner context of a deadlineCtx whose request ended.
var endedCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Value(key any) any           { return c.parent.Value(key) }

// Done makes the timer a context needs, on first use.
func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.parent, c.deadline)
	}
	return c.inner.Done()
}

// Err is the parent's error, or DeadlineExceeded past the deadline.
func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		return inner.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// end ends the context when the request ends (context.Canceled unless it
// already ended otherwise).
func (c *deadlineCtx) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	} else if c.inner == nil {
		c.inner = endedCtx
	}
}

// sweeper holds the requests in progress that have a deadline. It is safe
// for concurrent use; its zero value is ready.
type sweeper struct {
	mu      sync.Mutex
	live    map[*request]http.ResponseWriter
	running bool // a sweep goroutine runs while live is not empty
}

// add starts enforcing r's deadline on w until remove(r).
func (s *sweeper) add(r *request, w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = map[*request]http.ResponseWriter{}
	}
	s.live[r] = w
	if !s.running {
		s.running = true
		go s.sweep()
	}
}

// remove stops enforcing r's deadline. After it returns, the sweeper does
// not touch r's writer.
func (s *sweeper) remove(r *request) {
	s.mu.Lock()
	delete(s.live, r)
	s.mu.Unlock()
}

// sweep expires the requests past their deadline every sweepInterval and
// returns when no request is in progress.
func (s *sweeper) sweep() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var expired []http.ResponseWriter
	for range t.C {
		now := time.Now()
		expired = expired[:0]
		s.mu.Lock()
		if len(s.live) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		for r, w := range s.live {
			if !now.Before(r.ctx.deadline) {
				expired = append(expired, w)
				delete(s.live, r)
			}
		}
		// Deadlines are set while holding mu, so that remove (the
		// handler's end) waits for them: the writer stays valid.
		for _, w := range expired {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(now)
			_ = rc.SetWriteDeadline(now)
		}
		s.mu.Unlock()
	}
}
