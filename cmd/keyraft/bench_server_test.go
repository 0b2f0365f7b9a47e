package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestBenchAgainstDevServer(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	pid := strconv.Itoa(os.Getpid()) // the in-process server
	startAt := time.Now().Add(200 * time.Millisecond).Format(time.RFC3339Nano)
	for _, tc := range []struct {
		name, proto string
		args        []string
	}{
		{"closed-h2", "h2", []string{"--op", "mixed", "--dist", "uniform", "--warmup", "100ms", "--start-at", startAt}},
		{"open-h1-zipf", "http/1.1", []string{"--op", "decrypt", "--dist", "zipf", "--http1", "--rate", "500"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res benchResult
			args := append([]string{"bench", "--duration", "300ms", "--keys", "20", "--concurrency", "4",
				"--server-pids", pid, "--metrics", "--json"}, tc.args...)
			mustJSON(t, &res, append(args, s.adminArgs()...)...)
			if res.Requests == 0 || res.Errors != 0 {
				t.Fatalf("%d requests, %d errors", res.Requests, res.Errors)
			}
			if res.Keys != 20 || res.Proto != tc.proto || res.Endpoints != 1 {
				t.Errorf("keys %d, proto %q, endpoints %d; want 20, %q, 1", res.Keys, res.Proto, res.Endpoints, tc.proto)
			}
			if res.CPUSeconds == nil || res.CPUusPerRequest == nil {
				t.Error("no server CPU figures")
			}
			if res.Metrics == nil {
				t.Error("no metrics")
			}
			for _, bm := range benchMetrics {
				if _, ok := res.Metrics[bm.name]; !ok {
					t.Errorf("metric %s missing (want a delta or null)", bm.name)
				}
			}
		})
	}
	var names []string
	mustJSON(t, &names, append([]string{"key", "ls", "keyraft-bench-"}, s.adminArgs()...)...)
	if len(names) != 20 {
		t.Errorf("%d bench keys exist, want 20: %q", len(names), names)
	}
}

func TestBenchChurnAgainstDevServer(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	// A churn key left over by an interrupted run is deleted in the set-up,
	// so the run's first create does not fail.
	mustRun(t, append([]string{"key", "create", "churny-churn-0"}, s.adminArgs()...)...)
	var res benchResult
	mustJSON(t, &res, append([]string{"bench", "--name", "churny", "--op", "generate", "--duration", "500ms",
		"--warmup", "100ms", "--concurrency", "2", "--churn", "50", "--json"}, s.adminArgs()...)...)
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("%d requests, %d errors", res.Requests, res.Errors)
	}
	if res.Churn == nil || res.Churn.Done == 0 || res.Churn.Failed != 0 || res.Churn.Rate != 50 {
		t.Fatalf("churn %+v; want some done, none failed, rate 50", res.Churn)
	}
	var names []string
	mustJSON(t, &names, append([]string{"key", "ls", "churny"}, s.adminArgs()...)...)
	if len(names) != 1 || names[0] != "churny" {
		t.Errorf("keys after the run: %q; want only churny (no churn key left)", names)
	}
}
