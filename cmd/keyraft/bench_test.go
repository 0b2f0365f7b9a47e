package main

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyPickerBounds(t *testing.T) {
	for _, dist := range []string{"uniform", "zipf"} {
		for _, n := range []int{1, 2, 10, 1000} {
			pick, err := newKeyPicker(dist, n, 42)
			if err != nil {
				t.Fatalf("newKeyPicker(%s, %d): %v", dist, n, err)
			}
			seen := map[int]bool{}
			for range 20000 {
				k := pick()
				if k < 0 || k >= n {
					t.Fatalf("%s over %d keys picked %d", dist, n, k)
				}
				seen[k] = true
			}
			if n <= 10 && len(seen) != n {
				t.Errorf("%s over %d keys picked only %d distinct keys", dist, n, len(seen))
			}
		}
	}
}

func TestKeyPickerUniform(t *testing.T) {
	const n, draws = 10, 100000
	pick, err := newKeyPicker("uniform", n, 7)
	if err != nil {
		t.Fatal(err)
	}
	var counts [n]int
	for range draws {
		counts[pick()]++
	}
	for k, c := range counts {
		if want := draws / n; math.Abs(float64(c-want)) > 0.05*float64(want) {
			t.Errorf("key %d picked %d times, want about %d", k, c, want)
		}
	}
}

func TestKeyPickerZipf(t *testing.T) {
	const n, draws = 1000, 200000
	pick, err := newKeyPicker("zipf", n, 7)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, n)
	for range draws {
		counts[pick()]++
	}
	// P(k) = (1+k)^-s / H with H = sum over all keys.
	var h float64
	for k := range n {
		h += math.Pow(float64(1+k), -zipfS)
	}
	for _, k := range []int{0, 1, 9} {
		want := draws * math.Pow(float64(1+k), -zipfS) / h
		if got := float64(counts[k]); math.Abs(got-want) > 0.05*want {
			t.Errorf("key %d picked %v times, want about %.0f", k, got, want)
		}
	}
	if !(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[500]) {
		t.Errorf("zipf counts not decreasing: key 0 %d, 1 %d, 9 %d, 500 %d", counts[0], counts[1], counts[9], counts[500])
	}
}

func TestKeyPickerErrors(t *testing.T) {
	if _, err := newKeyPicker("normal", 10, 1); err == nil || !strings.Contains(err.Error(), "--dist") {
		t.Errorf("dist normal: err = %v", err)
	}
	if _, err := newKeyPicker("uniform", 0, 1); err == nil {
		t.Error("0 keys: no error")
	}
}

func TestBenchKeyNames(t *testing.T) {
	if got := benchKeyNames("k", 1); !reflect.DeepEqual(got, []string{"k"}) {
		t.Errorf("1 key: %q", got)
	}
	if got := benchKeyNames("k", 3); !reflect.DeepEqual(got, []string{"k-0", "k-1", "k-2"}) {
		t.Errorf("3 keys: %q", got)
	}
}

// procStat is a /proc/<pid>/stat line with utime 1500 and stime 250.
func procStat(pid int, comm string) string {
	return strconv.Itoa(pid) + " (" + comm + ") S 1 100 100 0 -1 4194560 2000 0 0 0 1500 250 0 0 20 0 12 0 4242 1000000 500 18446744073709551615\n"
}

func TestParseProcStat(t *testing.T) {
	for _, comm := range []string{"keyraft", "my (odd) server", ") S 1 2 3 4 5 6 7 8 9 10 11 12", "a b"} {
		got, err := parseProcStat([]byte(procStat(99, comm)))
		if err != nil || got != 1750 {
			t.Errorf("comm %q: ticks %d, err %v; want 1750", comm, got, err)
		}
	}
	for _, bad := range []string{"", "12 keyraft S 1", "12 (k) S 1 2 3", "12 (k) S 1 100 100 0 -1 4194560 2000 0 0 0 x 250 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCPUProbe(t *testing.T) {
	dir := t.TempDir()
	for _, pid := range []int{10, 20} {
		if err := os.MkdirAll(filepath.Join(dir, strconv.Itoa(pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(pid), "stat"), []byte(procStat(pid, "srv x")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := (cpuProbe{proc: dir, pids: []int{10, 20}}).ticks(); err != nil || got != 3500 {
		t.Errorf("ticks = %d, %v; want 3500", got, err)
	}
	if _, err := (cpuProbe{proc: dir, pids: []int{30}}).ticks(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing pid: err = %v", err)
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if _, err := (cpuProbe{proc: "/proc", pids: []int{os.Getpid()}}).ticks(); err != nil {
			t.Errorf("own process: %v", err)
		}
	}
}

func TestParsePIDs(t *testing.T) {
	if got, err := parsePIDs(" 12, 34,,"); err != nil || !reflect.DeepEqual(got, []int{12, 34}) {
		t.Errorf("parsePIDs = %v, %v", got, err)
	}
	if got, err := parsePIDs(""); err != nil || got != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"x", "-1", "0", "1,2x"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

const exposition0 = `# HELP keyraft_raft_applies_total Raft commands applied.
# TYPE keyraft_raft_applies_total counter
keyraft_raft_applies_total{type="create"} 5
keyraft_raft_applies_total{type="touch"} 10
# HELP keyraft_keystore_calls_total Keystore calls.
# TYPE keyraft_keystore_calls_total counter
keyraft_keystore_calls_total{op="get"} 3
# TYPE kes_http_request_success counter
kes_http_request_success 100
`

const exposition1 = `# HELP keyraft_raft_applies_total Raft commands applied.
# TYPE keyraft_raft_applies_total counter
keyraft_raft_applies_total{type="create"} 7
keyraft_raft_applies_total{type="touch"} 30
keyraft_raft_applies_total{type="seal"} 1
# HELP keyraft_keystore_calls_total Keystore calls.
# TYPE keyraft_keystore_calls_total counter
keyraft_keystore_calls_total{op="get"} 4
keyraft_keystore_calls_total{op="create"} 2
# TYPE kes_http_request_success counter
kes_http_request_success 200
`

// Another node whose keystore counter first appears during the window.
const exposition2 = `# TYPE keyraft_raft_applies_total counter
keyraft_raft_applies_total{type="touch"} 1
`

const exposition3 = `# TYPE keyraft_raft_applies_total counter
keyraft_raft_applies_total{type="touch"} 3
# TYPE keyraft_keystore_calls_total counter
keyraft_keystore_calls_total{op="get"} 6
`

func parseAll(t *testing.T, texts ...string) []metricFamilies {
	t.Helper()
	var out []metricFamilies
	for _, s := range texts {
		f, err := parseExposition([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func TestMetricDeltas(t *testing.T) {
	before, after := parseAll(t, exposition0, exposition2), parseAll(t, exposition1, exposition3)
	got := metricDeltas(before, after, 10)
	want := map[string]*metricDelta{
		metricRaftApplies: {Total: 2 + 20 + 1 + 2, PerRequest: 2.5, Label: "type",
			By: map[string]float64{"create": 2, "touch": 22, "seal": 1}},
		metricKeystoreCalls: {Total: 1 + 2 + 6, PerRequest: 0.9, Label: "op",
			By: map[string]float64{"get": 7, "create": 2}},
		metricCacheUnseal: nil,
	}
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			t.Errorf("%s: got %+v, want %+v", k, got[k], want[k])
		}
	}
	if s := formatMetricDelta(got[metricCacheUnseal]); s != "absent" {
		t.Errorf("absent metric printed as %q", s)
	}
	if s := formatMetricDelta(got[metricKeystoreCalls]); s != "9 (0.9/request) op{create=2 get=7}" {
		t.Errorf("keystore calls printed as %q", s)
	}
	if _, err := parseExposition([]byte("metric{ 1\n")); err == nil {
		t.Error("invalid exposition parsed")
	}
}

func TestScheduleOffset(t *testing.T) {
	if got := scheduleOffset(0, 1000); got != 0 {
		t.Errorf("k=0: %v", got)
	}
	if got := scheduleOffset(2500, 1000); got != 2500*time.Millisecond {
		t.Errorf("k=2500 at 1000/s: %v", got)
	}
	if got := scheduleOffset(3, 3); got != time.Second {
		t.Errorf("k=3 at 3/s: %v", got)
	}
	for k := int64(1); k < 10000; k++ {
		if scheduleOffset(k, 7777) <= scheduleOffset(k-1, 7777) {
			t.Fatalf("offsets not increasing at %d", k)
		}
	}
}

func TestRunOpenSchedule(t *testing.T) {
	var calls atomic.Int64
	ops := make([]benchOp, 8)
	for i := range ops {
		ops[i] = func(context.Context, int) error { calls.Add(1); return nil }
	}
	const rate = 2000
	var befores, afters int
	p := benchPlan{warmup: 50 * time.Millisecond, duration: 250 * time.Millisecond, rate: rate,
		before: func() error { befores++; return nil }, after: func() error { afters++; return nil }}
	s, err := runBench(context.Background(), p, ops)
	if err != nil {
		t.Fatal(err)
	}
	if befores != 1 || afters != 1 {
		t.Errorf("before called %d times, after %d times", befores, afters)
	}
	// Every request due in the window is either answered or dropped.
	scheduled := int64(len(s.lat)) + s.errors + s.dropped
	if want := rate * s.elapsed.Seconds(); math.Abs(float64(scheduled)-want) > 2 {
		t.Errorf("%d requests scheduled in %v, want %.0f", scheduled, s.elapsed, want)
	}
	if s.errors != 0 {
		t.Errorf("%d errors", s.errors)
	}
	if n := calls.Load(); n <= int64(len(s.lat)) {
		t.Errorf("%d calls, %d measured: the warm-up was not run or counted", n, len(s.lat))
	}
}

func TestRunOpenDropsAndLatencyFromDueTime(t *testing.T) {
	// One worker whose requests take 40 ms, asked for one every 10 ms: most
	// requests are dropped, and none of the answered ones is faster than its
	// service time.
	const service = 40 * time.Millisecond
	op := func(ctx context.Context, _ int) error {
		select {
		case <-time.After(service):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s, err := runBench(context.Background(), benchPlan{duration: 200 * time.Millisecond, rate: 100}, []benchOp{op})
	if err != nil {
		t.Fatal(err)
	}
	if s.dropped == 0 || len(s.lat) == 0 || len(s.lat) > 6 {
		t.Errorf("%d answered, %d dropped; want a few answered and some dropped", len(s.lat), s.dropped)
	}
	if len(s.lat) > 0 && s.lat[0] < service {
		t.Errorf("fastest latency %v is below the service time %v", s.lat[0], service)
	}
}

func TestRunClosedWarmupAndErrors(t *testing.T) {
	var calls atomic.Int64
	ops := []benchOp{
		func(context.Context, int) error { calls.Add(1); return nil },
		func(_ context.Context, i int) error {
			if i%2 == 1 {
				return errors.New("odd")
			}
			return nil
		},
	}
	var callsAtStart int64
	p := benchPlan{warmup: 30 * time.Millisecond, duration: 100 * time.Millisecond,
		before: func() error { callsAtStart = calls.Load(); return nil }}
	s, err := runBench(context.Background(), p, ops)
	if err != nil {
		t.Fatal(err)
	}
	if callsAtStart == 0 {
		t.Error("no requests during the warm-up")
	}
	if len(s.lat) == 0 || s.errors == 0 {
		t.Errorf("%d requests, %d errors; want both", len(s.lat), s.errors)
	}
	if s.elapsed < 100*time.Millisecond || s.elapsed > time.Second {
		t.Errorf("window of %v, want about 100ms", s.elapsed)
	}
}

func TestPrintBench(t *testing.T) {
	cpu, us := 1.5, 75.0
	res := benchResult{Op: "mixed", Endpoints: 1, Concurrency: 4, Keys: 20, Dist: "zipf", Proto: "h2", Rate: 2000,
		Seconds: 10, Requests: 20000, Dropped: 3, Late: 7, PerSecond: 2000, CPUSeconds: &cpu, CPUusPerRequest: &us,
		Metrics: map[string]*metricDelta{metricRaftApplies: {Total: 0, Label: "type", By: map[string]float64{"put_key": 0}}}}
	var out termBuffer
	printBench(printer{out: &out, tty: true}, res)
	for _, want := range []string{"over h2, 4 workers, open loop at 2000 req/s", "keys      20 (zipf)",
		"3 dropped, 7 late", "1.50 s CPU, 75.0 µs/request", metricRaftApplies + " 0 (0/request)", metricCacheUnseal + " absent"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunBenchBeforeError(t *testing.T) {
	boom := errors.New("boom")
	op := func(context.Context, int) error { return nil }
	for _, rate := range []float64{0, 1000} {
		p := benchPlan{duration: time.Hour, rate: rate, before: func() error { return boom }}
		if _, err := runBench(context.Background(), p, []benchOp{op, op}); !errors.Is(err, boom) {
			t.Errorf("rate %v: err = %v, want boom", rate, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := runBench(ctx, benchPlan{warmup: time.Hour, duration: time.Hour}, []benchOp{op}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled warm-up: err = %v", err)
	}
}

func TestParseStartAt(t *testing.T) {
	if got, err := parseStartAt(""); err != nil || !got.IsZero() {
		t.Errorf("empty: %v, %v", got, err)
	}
	if got, err := parseStartAt("1700000000.5"); err != nil || !got.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("unix seconds: %v, %v", got, err)
	}
	if got, err := parseStartAt("2024-01-02T03:04:05Z"); err != nil || !got.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v, %v", got, err)
	}
	for _, bad := range []string{"soon", "-5", "2024-01-02"} {
		if _, err := parseStartAt(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
