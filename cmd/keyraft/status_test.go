package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestStatusMetricLog(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	admin := s.adminArgs()
	args := func(a ...string) []string { return append(a, admin...) }

	t.Run("status", func(t *testing.T) {
		var st statusJSON
		mustJSON(t, &st, args("status")...)
		if !st.Online || st.Endpoint != "https://"+s.addr || st.OS == "" || st.CPUs == 0 || st.KeyStoreUnreachable {
			t.Errorf("status = %+v", st)
		}
		st = statusJSON{}
		mustJSON(t, &st, args("status", "--api")...)
		found := false
		for _, a := range st.APIs {
			found = found || (a.Method == "GET" && a.Path == "/v1/status")
		}
		if !found {
			t.Errorf("status --api lists %v, want GET /v1/status", st.APIs)
		}
		r := runCLITerminal(t, args("status", "-s")...)
		if r.err != nil || !strings.Contains(r.stdout, "https://"+s.addr) || !strings.Contains(r.stdout, "online") {
			t.Errorf("status -s = %q, %v", r.stdout, r.err)
		}
		r = runCLITerminal(t, args("status")...)
		if r.err != nil || !strings.Contains(r.stdout, "Keystore   reachable") {
			t.Errorf("status = %q, %v", r.stdout, r.err)
		}
	})

	t.Run("status with a dead node", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		r := runCLI(t, "status", "-k", "-a", s.adminKey.String(), "--server", s.addr+","+dead)
		if r.err == nil || !strings.Contains(r.err.Error(), "1 of 2 servers did not answer") {
			t.Fatalf("status error = %v", r.err)
		}
		var online, offline int
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		for dec.More() {
			var st statusJSON
			if err := dec.Decode(&st); err != nil {
				t.Fatalf("status output %q: %v", r.stdout, err)
			}
			if st.Online {
				online++
			} else if st.Endpoint == "https://"+dead && st.Error != "" {
				offline++
			}
		}
		if online != 1 || offline != 1 {
			t.Errorf("status printed %d online and %d offline nodes, want 1 and 1: %q", online, offline, r.stdout)
		}
	})

	t.Run("metric", func(t *testing.T) {
		mustRun(t, args("key", "create", "metric-key")...)
		var m metricSummary
		mustJSON(t, &m, args("metric")...)
		if m.Requests.Success < 1 || m.Latency.Count < 1 || len(m.Latency.Buckets) == 0 || m.Latency.P50 <= 0 || m.System.CPUs < 1 {
			t.Errorf("metric = %+v", m)
		}
		r := runCLITerminal(t, args("metric")...)
		if r.err != nil || !strings.Contains(r.stdout, "Requests") || !strings.Contains(r.stdout, "OK (2xx)") {
			t.Errorf("terminal metric = %q, %v", r.stdout, r.err)
		}
		wantErr(t, "--rate must be positive", args("metric", "--rate", "0s")...)
	})

	t.Run("metric rate", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := newNotifyBuffer()
		done := make(chan cliResult, 1)
		go func() { done <- runCLICtx(ctx, out, &bytes.Buffer{}, args("metric", "--rate", "20ms")...) }()
		waitFor(t, out, func(s string) bool { return strings.Count(s, "\n") >= 2 }, done)
		cancel()
		if r := <-done; r.err != nil {
			t.Fatalf("metric --rate: %v", r.err)
		}
		var rate rateJSON
		line, _, _ := strings.Cut(out.String(), "\n")
		if err := json.Unmarshal([]byte(line), &rate); err != nil || rate.Interval <= 0 || rate.Time.IsZero() {
			t.Errorf("rate line %q: %+v %v", line, rate, err)
		}
	})

	t.Run("log", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := newNotifyBuffer()
		done := make(chan cliResult, 1)
		go func() { done <- runCLICtx(ctx, out, &bytes.Buffer{}, args("log", "--audit")...) }()
		// The subscription races with the first requests: create keys until
		// one of them shows up in the stream.
		deadline := time.After(10 * time.Second)
		ticker := time.NewTicker(50 * time.Millisecond)
		defer ticker.Stop()
		for i := 0; !strings.Contains(out.String(), "/v1/key/create/log-key-"); i++ {
			mustRun(t, args("key", "create", fmt.Sprintf("log-key-%d", i))...)
			select {
			case <-out.writes:
			case <-ticker.C:
			case r := <-done:
				t.Fatalf("log ended early: %v (stderr %q)", r.err, r.stderr)
			case <-deadline:
				t.Fatalf("no audit event for key creation; output %q", out.String())
			}
		}
		cancel()
		if r := <-done; r.err != nil {
			t.Fatalf("log after cancel: %v", r.err)
		}
		line, _, _ := strings.Cut(out.String(), "\n")
		var ev auditJSON
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if ev.Response.Code != 200 || ev.Request.Identity != s.adminKey.Identity() || ev.Time.IsZero() {
			t.Errorf("audit event = %+v", ev)
		}
	})
}

// waitFor waits until the buffer's content satisfies ok, failing the test
// after a deadline or when the command ends first.
func waitFor(t *testing.T, b *notifyBuffer, ok func(string) bool, done <-chan cliResult) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !ok(b.String()) {
		select {
		case <-b.writes:
		case r := <-done:
			t.Fatalf("command ended early: %v (stderr %q, stdout %q)", r.err, r.stderr, b.String())
		case <-deadline:
			t.Fatalf("timed out; output %q", b.String())
		}
	}
}

// TestHelpAndCompletion checks that every command has --help and that the
// shell completion scripts are generated.
func TestHelpAndCompletion(t *testing.T) {
	var walk func(c *cobra.Command, path []string)
	count := 0
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string{}, path...), sub.Name())
			r := runCLI(t, append(p, "--help")...)
			if r.err != nil || !strings.Contains(r.stdout, "Usage:") {
				t.Errorf("keyraft %s --help: %v, %q", strings.Join(p, " "), r.err, r.stdout)
			}
			count++
			walk(sub, p)
		}
	}
	walk(newRootCmd(), nil)
	if count < 20 {
		t.Errorf("only %d commands have help", count)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out := mustRun(t, "completion", shell)
		if !strings.Contains(out, "keyraft") {
			t.Errorf("completion %s does not mention keyraft", shell)
		}
	}
}
