package api

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/store"
)

func TestReady(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.get("/v1/ready"))
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("aws: dial tcp: %w", store.ErrUnreachable), 504, "key store is not reachable"},
		{store.ErrUnreachable, 504, "key store is not reachable"},
		{errors.New("access denied"), 502, "key store is unavailable"},
	} {
		e.backend.mu.Lock()
		e.backend.statusErr = tc.err
		e.backend.mu.Unlock()
		expectError(t, e.admin.get("/v1/ready"), tc.code, tc.msg)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	status := func() map[string]any {
		t.Helper()
		var m map[string]any
		expectJSON(t, e.admin.get("/v1/status"), &m) // always 200
		return m
	}
	m := status()
	for _, k := range []string{"version", "os", "arch", "uptime", "num_cpu", "num_cpu_used", "mem_heap_used", "mem_stack_used"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status lacks %q: %v", k, m)
		}
	}
	if m["version"] != "v-test" || m["os"] != runtime.GOOS || m["arch"] != runtime.GOARCH || m["keystore_latency"] != 3.0 {
		t.Fatalf("status = %v", m)
	}
	if _, ok := m["keystore_unreachable"]; ok {
		t.Fatalf("healthy status reports unreachable: %v", m)
	}
	set := func(lat time.Duration, err error) {
		e.backend.mu.Lock()
		e.backend.statusLat, e.backend.statusErr = lat, err
		e.backend.mu.Unlock()
	}
	set(200*time.Microsecond, nil) // rounds up to the 1 ms minimum
	if m := status(); m["keystore_latency"] != 1.0 {
		t.Fatalf("sub-millisecond latency = %v", m["keystore_latency"])
	}
	set(0, fmt.Errorf("fs: %w", store.ErrUnreachable))
	m = status()
	if m["keystore_unreachable"] != true || m["keystore_unavailable"] != true {
		t.Fatalf("unreachable status = %v", m)
	}
	if _, ok := m["keystore_latency"]; ok {
		t.Fatalf("unreachable status has a latency: %v", m)
	}
	set(0, errors.New("throttled"))
	m = status()
	if m["keystore_unavailable"] != true || m["keystore_unreachable"] != nil {
		t.Fatalf("unavailable status = %v", m)
	}
}

// metricValue returns the value of the sample line that starts with
// series followed by a space, or -1.
func metricValue(text, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	expectEmpty(t, e.admin.post("/v1/key/create/k", ""))
	for range 3 {
		expectOK(t, e.admin.post("/v1/key/generate/k", ""))
	}
	expectError(t, e.admin.get("/v1/key/describe/missing"), 404, "key does not exist")
	expectError(t, e.admin.get("/v1/key/describe/bad.name"), 400, "key name 'bad.name' is empty, too long or contains invalid characters")
	expectError(t, e.stranger.post("/v1/key/create/x", ""), 403, "not authorized: insufficient permissions")
	e.backend.force("boom", errors.New("boom"))
	expectError(t, e.admin.post("/v1/key/generate/boom", ""), 500, "failed to generate encryption key")
	expectOK(t, e.admin.get("/v1/status")) // not counted

	r := expectOK(t, e.admin.get("/v1/metrics"))
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("metrics Content-Type %q", ct)
	}
	text := string(r.body)
	for _, name := range []string{
		"kes_http_request_success", "kes_http_request_error", "kes_http_request_failure",
		"kes_http_request_active", "kes_http_response_time", "kes_log_error_events", "kes_log_audit_events",
		"kes_system_up_time", "kes_system_num_cpu", "kes_system_num_cpu_used", "kes_system_num_threads",
		"kes_system_mem_heap_used", "kes_system_mem_heap_objects", "kes_system_mem_stack_used",
	} {
		if !strings.Contains(text, "\n# TYPE "+name+" ") {
			t.Errorf("metrics lack %s", name)
		}
	}
	for series, want := range map[string]float64{
		`kes_http_request_success{code="200"}`:   4,
		`kes_http_request_error{code="404"}`:     1,
		`kes_http_request_error{code="400"}`:     1,
		`kes_http_request_error{code="403"}`:     1,
		`kes_http_request_failure{code="500"}`:   1,
		`kes_http_request_active`:                1, // this scrape
		`kes_http_response_time_count`:           9,
		`kes_system_num_cpu`:                     float64(runtime.NumCPU()),
		`kes_http_response_time_bucket{le="10"}`: 9,
	} {
		if got := metricValue(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if !strings.Contains(text, `kes_http_response_time_bucket{le="0.01"}`) || !strings.Contains(text, `kes_http_response_time_bucket{le="1.5"}`) {
		t.Error("response time buckets differ from KES's")
	}

	// Content negotiation: protobuf when asked for.
	r = expectOK(t, e.admin.get("/v1/metrics", "Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"))
	if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "protobuf") {
		t.Fatalf("negotiated Content-Type %q", ct)
	}

	// Other components register into the same registry.
	if e.srv.Registry() == nil {
		t.Fatal("no registry")
	}
	if r := e.admin.get("/v1/metrics"); r.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d", r.StatusCode)
	}
}
