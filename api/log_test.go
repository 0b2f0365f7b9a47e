package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// openStream opens a log stream and returns a channel of its lines. The
// stream is closed when the test ends.
func openStream(t *testing.T, c *client, path string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.c.Do(req) // returns once the headers are flushed
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return lines
}

// next returns the next stream line, failing after a deadline.
func next(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("stream ended")
		}
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no stream line within 5s")
	}
	return ""
}

type auditLine struct {
	Time    time.Time `json:"time"`
	Request struct {
		IP       string `json:"ip"`
		Path     string `json:"path"`
		Identity string `json:"identity"`
		Enclave  string `json:"enclave"`
	} `json:"request"`
	Response struct {
		Code int   `json:"code"`
		Time int64 `json:"time"`
	} `json:"response"`
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	e.backend.setPolicy("default", "p", []string{"/v1/log/audit", "/v1/key/create/*"}, nil, e.user.identity)
	lines := openStream(t, e.user, "/v1/log/audit")

	// Not audited: the ready probe, metrics scrapes and log streams.
	expectEmpty(t, e.admin.get("/v1/ready"))
	expectOK(t, e.admin.get("/v1/metrics"))
	before := time.Now()
	expectEmpty(t, e.user.post("/v1/key/create/audited", "", "Kes-Enclave", "default"))
	expectError(t, e.user.post("/v1/key/create/t1", "", "Kes-Enclave", "tenant-1"), 403, "not authorized: insufficient permissions")
	r := e.admin.get("/v1/nope")
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.StatusCode)
	}

	var got []auditLine
	for range 3 {
		var a auditLine
		if err := json.Unmarshal([]byte(next(t, lines)), &a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	want := []struct {
		path, identity, enclave string
		code                    int
	}{
		{"/v1/key/create/audited", e.user.identity, "default", 200},
		{"/v1/key/create/t1", e.user.identity, "tenant-1", 403},
		{"/v1/nope", e.admin.identity, "", 404},
	}
	for i, w := range want {
		a := got[i]
		if a.Request.Path != w.path || a.Request.Identity != w.identity || a.Request.Enclave != w.enclave || a.Response.Code != w.code {
			t.Errorf("event %d = %+v, want %+v", i, a, w)
		}
		if a.Request.IP != "127.0.0.1" || a.Time.Before(before.Add(-time.Second)) || a.Response.Time < 0 || a.Response.Time > 5000 {
			t.Errorf("event %d = %+v", i, a)
		}
	}

	// The same lines went to the audit output, one JSON object per line.
	eventually(t, "audit output", func() bool { return strings.Count(e.audit.String(), "\n") >= 3 })
	out := strings.Split(strings.TrimSuffix(e.audit.String(), "\n"), "\n")
	if len(out) != 3 {
		t.Fatalf("audit output has %d lines:\n%s", len(out), e.audit.String())
	}
	for _, l := range out {
		var a auditLine
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.Request.Path == "/v1/ready" || a.Request.Path == "/v1/metrics" || a.Request.Path == "/v1/log/audit" {
			t.Fatalf("audit output line %q (%v)", l, err)
		}
	}
	// Delivered events are counted.
	eventually(t, "kes_log_audit_events", func() bool {
		return metricValue(string(e.admin.get("/v1/metrics").body), "kes_log_audit_events") >= 3
	})
}

func TestErrorLog(t *testing.T) {
	e := newEnv(t)
	lines := openStream(t, e.admin, "/v1/log/error")
	e.backend.force("boom", errors.New("disk on fire"))
	expectError(t, e.admin.post("/v1/key/generate/boom", ""), 500, "failed to generate encryption key")

	var m map[string]string
	if err := json.Unmarshal([]byte(next(t, lines)), &m); err != nil {
		t.Fatal(err)
	}
	if msg := m["message"]; len(m) != 1 || !strings.Contains(msg, "failed to generate encryption key") || !strings.Contains(msg, "disk on fire") || !strings.Contains(msg, "[ERROR]") {
		t.Fatalf("error line = %v", m)
	}
	// Lines written directly (any writer output) are split per line.
	if _, err := e.srv.ErrorLogWriter().Write([]byte("first\nsecond \"quoted\"\n\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"message":"first"}`, `{"message":"second \"quoted\""}`} {
		if got := next(t, lines); got != want {
			t.Fatalf("line %q, want %q", got, want)
		}
	}
	eventually(t, "kes_log_error_events", func() bool {
		return metricValue(string(e.admin.get("/v1/metrics").body), "kes_log_error_events") >= 3
	})
	// Streams end when the server closes.
	_ = e.srv.Close()
	select {
	case _, ok := <-lines:
		for ok {
			_, ok = <-lines
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Close")
	}
}

func TestMulticast(t *testing.T) {
	m := NewMulticast(2)
	m.Publish([]byte("nobody")) // no subscribers: nothing happens
	slow, fast := m.Subscribe(), m.Subscribe()
	if m.Subscribers() != 2 {
		t.Fatalf("%d subscribers", m.Subscribers())
	}
	var got []string
	for _, ev := range []string{"a", "b", "c", "d"} {
		m.Publish([]byte(ev))
		got = append(got, string(<-fast.C))
	}
	if strings.Join(got, "") != "abcd" || fast.Dropped() != 0 {
		t.Fatalf("fast subscriber got %v, dropped %d", got, fast.Dropped())
	}
	if a, b := string(<-slow.C), string(<-slow.C); a+b != "ab" || slow.Dropped() != 2 {
		t.Fatalf("slow subscriber got %s%s, dropped %d", a, b, slow.Dropped())
	}
	slow.Cancel()
	slow.Cancel() // idempotent
	if _, ok := <-slow.C; ok || m.Subscribers() != 1 {
		t.Fatal("cancelled subscription still open")
	}
	m.Close()
	m.Close()
	if _, ok := <-fast.C; ok {
		t.Fatal("subscription open after Close")
	}
	late := m.Subscribe()
	if _, ok := <-late.C; ok || m.Subscribers() != 0 {
		t.Fatal("subscription after Close is open")
	}
	fast.Cancel()
	m.Publish([]byte("after close"))
}

func TestMulticastConcurrent(t *testing.T) {
	m := NewMulticast(8)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				m.Publish([]byte("x"))
			}
		})
		wg.Go(func() {
			for range 50 {
				s := m.Subscribe()
				select {
				case <-s.C:
				default:
				}
				s.Cancel()
			}
		})
	}
	wg.Wait()
	if m.Subscribers() != 0 {
		t.Fatalf("%d subscribers left", m.Subscribers())
	}
}
