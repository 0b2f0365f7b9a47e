package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// balancer holds the endpoints and their health. It is shared by clients
// derived from one another and is safe for concurrent use.
type balancer struct {
	endpoints []*endpoint
	cooldown  time.Duration
	now       func() time.Time  // injectable clock (tests)
	perm      func(n int) []int // injectable order (tests)
}

// endpoint is one server URL and its health state.
type endpoint struct {
	url string

	mu      sync.Mutex
	benched time.Time // zero: healthy; else benched until this time
	probing bool      // a probe request is in flight
}

func newBalancer(urls []string, cooldown time.Duration) *balancer {
	lb := &balancer{cooldown: cooldown, now: time.Now, perm: rand.Perm}
	for _, u := range urls {
		lb.endpoints = append(lb.endpoints, &endpoint{url: u})
	}
	return lb
}

// only returns a balancer over the single endpoint u, reusing its state when
// lb already has it.
func (lb *balancer) only(u string) *balancer {
	ep := &endpoint{url: u}
	for _, e := range lb.endpoints {
		if e.url == u {
			ep = e
			break
		}
	}
	return &balancer{endpoints: []*endpoint{ep}, cooldown: lb.cooldown, now: lb.now, perm: lb.perm}
}

// acquire reports whether ep may be used now: it is healthy, or its cool-down
// is over and no other probe is in flight (then the caller is the probe).
// With force, a benched endpoint is used anyway (last resort).
func (ep *endpoint) acquire(now time.Time, force bool) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	switch {
	case ep.benched.IsZero():
		return true
	case force:
		return true
	case !now.Before(ep.benched) && !ep.probing:
		ep.probing = true
		return true
	}
	return false
}

// healthy returns ep to service.
func (ep *endpoint) healthy() {
	ep.mu.Lock()
	ep.benched, ep.probing = time.Time{}, false
	ep.mu.Unlock()
}

// fail benches ep until now+cooldown.
func (ep *endpoint) fail(now time.Time, cooldown time.Duration) {
	ep.mu.Lock()
	ep.benched, ep.probing = now.Add(cooldown), false
	ep.mu.Unlock()
}

// release ends an attempt that says nothing about ep's health (the caller's
// context ended); a pending probe may be taken again.
func (ep *endpoint) release() {
	ep.mu.Lock()
	ep.probing = false
	ep.mu.Unlock()
}

// isBenched reports whether ep is currently benched (tests, diagnostics).
func (ep *endpoint) isBenched(now time.Time) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return !ep.benched.IsZero() && now.Before(ep.benched)
}

// request describes one API call.
type request struct {
	method     string
	path       string     // escaped path, e.g. "/v1/key/create/my-key"
	query      url.Values // optional
	body       []byte     // optional, resent on every attempt
	enclave    bool       // send the Kes-Enclave header
	idempotent bool       // may be repeated after the server may have seen it
	stream     bool       // the caller reads the body incrementally
	accept     string     // optional Accept header
}

// outcome classifies an attempt.
type outcome int

const (
	done      outcome = iota // answer for the caller: success, 4xx, 501 or context end
	retryable                // the next endpoint may be tried
	final                    // endpoint failed, but the request must not be repeated
)

// send performs req against the endpoints and returns a 2xx response, whose
// body the caller must close. Non-stream responses are fully buffered.
func (c *Client) send(ctx context.Context, req *request) (*http.Response, error) {
	lb := c.lb
	order := lb.perm(len(lb.endpoints))
	tried := make([]bool, len(lb.endpoints))
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for _, i := range order {
			ep := lb.endpoints[i]
			if tried[i] || !ep.acquire(lb.now(), pass == 1) {
				continue
			}
			tried[i] = true
			resp, out, err := c.attempt(ctx, ep, req)
			if out != retryable {
				return resp, err
			}
			lastErr = err
		}
	}
	return nil, lastErr
}

// errAttemptTimeout is wrapped by ConnError when WithAttemptTimeout expired.
var errAttemptTimeout = errors.New("attempt timed out")

// attempt sends req to ep once and updates ep's health.
func (c *Client) attempt(ctx context.Context, ep *endpoint, req *request) (*http.Response, outcome, error) {
	lb := c.lb
	actx, cancel := context.WithCancel(ctx)
	var timedOut atomic.Bool
	var timer *time.Timer
	if c.attemptTimeout > 0 {
		timer = time.AfterFunc(c.attemptTimeout, func() { timedOut.Store(true); cancel() })
	}
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
	}

	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	hreq, err := c.newHTTPRequest(actx, ep.url, req)
	if err != nil {
		stop()
		cancel()
		ep.release()
		return nil, done, err
	}

	resp, err := c.http.Do(hreq)
	if err == nil && !req.stream {
		// Read the whole body inside the attempt, so that a node that hangs
		// mid-body counts as an attempt failure.
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
		resp.Body.Close()
		if err == nil && len(body) > maxResponseBody {
			clear(body)
			err = fmt.Errorf("response body exceeds %d bytes", maxResponseBody)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	stop()
	if err != nil {
		cancel()
		if ctxErr := ctx.Err(); ctxErr != nil {
			ep.release()
			return nil, done, fmt.Errorf("client: %s %s: %w", req.method, ep.url+req.path, ctxErr)
		}
		ep.fail(lb.now(), lb.cooldown)
		if timedOut.Load() {
			err = fmt.Errorf("%w after %v", errAttemptTimeout, c.attemptTimeout)
		}
		cerr := &ConnError{Endpoint: ep.url, Err: err}
		if req.idempotent || !wrote.Load() {
			return nil, retryable, cerr
		}
		return nil, final, cerr
	}
	if timedOut.Load() && req.stream {
		// The timer fired after the headers arrived but before it was stopped.
		resp.Body.Close()
		cancel()
		ep.fail(lb.now(), lb.cooldown)
		return nil, retryable, &ConnError{Endpoint: ep.url, Err: fmt.Errorf("%w after %v", errAttemptTimeout, c.attemptTimeout)}
	}
	if req.stream {
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	} else {
		cancel()
	}

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		ep.healthy()
		return resp, done, nil
	case code >= 500 && code != http.StatusNotImplemented:
		ep.fail(lb.now(), lb.cooldown)
		err := parseErrorResponse(resp)
		resp.Body.Close()
		if req.idempotent {
			return nil, retryable, err
		}
		return nil, final, err
	default: // 1xx, 3xx not followed, 4xx, 501: the node works; the answer is final
		ep.healthy()
		err := parseErrorResponse(resp)
		resp.Body.Close()
		return nil, done, err
	}
}

// newHTTPRequest builds the HTTP request for one attempt.
func (c *Client) newHTTPRequest(ctx context.Context, base string, req *request) (*http.Request, error) {
	target := base + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", req.method, target, err)
	}
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if req.accept != "" {
		hreq.Header.Set("Accept", req.accept)
	}
	if req.enclave && c.enclave != "" {
		hreq.Header.Set(EnclaveHeader, c.enclave)
	}
	hreq.Header.Set("User-Agent", "keyraft-client")
	return hreq, nil
}

// cancelBody releases the attempt's context when a stream body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body, then cancels the attempt's context.
func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
