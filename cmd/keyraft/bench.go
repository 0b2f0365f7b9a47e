package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

// benchResult is the JSON form of `keyraft bench`.
type benchResult struct {
	Op            string  `json:"op"`
	Endpoints     int     `json:"endpoints"`
	Concurrency   int     `json:"concurrency"`
	Keys          int     `json:"keys"`
	Dist          string  `json:"dist"`
	Proto         string  `json:"proto"`          // negotiated ALPN: "h2" or "http/1.1"
	Rate          float64 `json:"rate"`           // open-loop requests/s; 0 for a closed loop
	WarmupSeconds float64 `json:"warmup_seconds"` // load before the window, not counted
	Seconds       float64 `json:"seconds"`        // the measured window
	Requests      int64   `json:"requests"`       // successful requests in the window
	Errors        int64   `json:"errors"`
	// ErrorSamples counts the failed requests by error message (up to a
	// few distinct messages per worker; the rest as "(other errors)").
	ErrorSamples map[string]int64 `json:"error_samples,omitempty"`
	Dropped      int64            `json:"dropped"` // open loop: not sent, every worker busy
	Late         int64            `json:"late"`    // open loop: sent more than 1 ms after due
	PerSecond    float64          `json:"requests_per_second"`
	P50ms        float64          `json:"p50_ms"`
	P99ms        float64          `json:"p99_ms"`
	MaxMs        float64          `json:"max_ms"`
	// StartLateSeconds is how much later than --start-at the load started
	// because the set-up took longer.
	StartLateSeconds float64 `json:"start_late_seconds,omitempty"`
	// CPUSeconds is the utime+stime of --server-pids over the window, and
	// CPUusPerRequest that per successful request; both absent without pids.
	CPUSeconds      *float64 `json:"cpu_seconds,omitempty"`
	CPUusPerRequest *float64 `json:"cpu_us_per_request,omitempty"`
	// Metrics holds, with --metrics, the change of each server counter over
	// the window summed over the endpoints; null when no server exports it.
	Metrics map[string]*metricDelta `json:"metrics,omitempty"`
	// Churn holds, with --churn, the creates and deletes run beside the
	// load.
	Churn *churnResult `json:"churn,omitempty"`
}

// benchOptions are the flags of `keyraft bench` besides the client flags.
type benchOptions struct {
	duration, warmup  time.Duration
	concurrency, keys int
	op, name, dist    string
	rate, churn       float64
	pids, startAt     string
	http1, metrics    bool
	failover          bool
}

func newBenchCmd() *cobra.Command {
	var (
		f *clientFlags
		o benchOptions
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure generate/decrypt throughput and latency against the server(s)",
		Long: `Drive generate and/or decrypt requests from concurrent workers for a fixed
time and report requests per second and latency percentiles. With several
--server endpoints the workers are spread over them round-robin, one
connection pool per endpoint, so the cluster's throughput is measured. The
keys are created if they do not exist: with --keys 1 the key is --name, with
--keys N they are <name>-0 to <name>-(N-1), picked per request by --dist
(zipf: key 0 is the hottest). For decrypt, one data key per key is sealed
before the run.

By default every worker sends its next request when the previous one is
answered (closed loop). --rate R sends R requests/s in total on a fixed
schedule instead (open loop): latency counts from each request's due time,
a request due while all --concurrency workers are busy is dropped, and one
sent more than 1 ms after its due time is late.

Each worker sends to one --server endpoint (workers spread over them);
with --failover every worker uses all of them and fails over to the next
when one does not answer, as MinIO does, so a node that stops costs no
failed request.

--warmup runs the load before the measured window without counting it.
--start-at holds the load back until a given time, so that several bench
processes (one per server, see scripts/bench-pair.sh) load at the same time
whatever their set-up took.
--server-pids reads the CPU time of local server processes from /proc before
and after the window; --metrics reads the servers' /v1/metrics and reports
the change of Keyraft's Raft, keystore and unseal counters.

--churn R runs a write load beside the measured requests, not counted in
their figures: from the start of the load (warm-up included) until the
window closes, keys named <name>-churn-<n> are created and deleted through
the first --server endpoint, alternately (create 0, delete 0, create 1, …),
R operations per second in total on a fixed schedule: operation k is due at
k/R s, a delete once its create is answered if that is later. Pairs overlap
when a write takes longer than 2/R; a pair due while 64 are in flight is
dropped. The churn operations due in the window that succeeded, failed or
were dropped, and the latency of the successful ones, are reported.
Left-over churn keys of an interrupted run are deleted before the load.`,
		Example: `  keyraft bench --duration 10s --concurrency 16 --op mixed
  keyraft bench --keys 10000 --dist zipf --warmup 2s --server-pids 1234 --metrics
  keyraft bench --http1 --rate 2000 --concurrency 64
  keyraft bench --op generate --churn 100 --warmup 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			res, err := o.run(cmd.Context(), f)
			if err != nil {
				return err
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(res)
			}
			printBench(p, res)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of the measured window")
	fs.IntVar(&o.concurrency, "concurrency", 32, "number of concurrent workers (in-flight requests)")
	fs.StringVar(&o.op, "op", "mixed", "generate, decrypt or mixed")
	fs.StringVar(&o.name, "name", "keyraft-bench", "key name, or name prefix with --keys > 1 (created if missing)")
	fs.IntVar(&o.keys, "keys", 1, "number of keys: <name>-0 … <name>-(N-1); 1 uses <name>")
	fs.StringVar(&o.dist, "dist", "uniform", "how a request picks its key: uniform or zipf (s=1.1)")
	fs.BoolVar(&o.http1, "http1", false, "use HTTP/1.1 instead of HTTP/2")
	fs.BoolVar(&o.failover, "failover", false, "every worker uses every --server endpoint, failing over (as MinIO does), instead of one each")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: requests per second in total (0: closed loop)")
	fs.Float64Var(&o.churn, "churn", 0, "beside the load, create and delete keys <name>-churn-<n> at this many operations per second")
	fs.DurationVar(&o.warmup, "warmup", 0, "run the load this long before the measured window")
	fs.StringVar(&o.pids, "server-pids", "", "comma-separated local server pids: report their CPU time per request")
	fs.BoolVar(&o.metrics, "metrics", false, "report the change of the servers' Keyraft counters over the window")
	fs.StringVar(&o.startAt, "start-at", "", "start the load (warm-up) at this time, after the set-up: unix seconds or RFC 3339")
	f = addClientFlags(cmd)
	return cmd
}

// validate checks the flag values.
func (o benchOptions) validate() error {
	switch {
	case o.op != "generate" && o.op != "decrypt" && o.op != "mixed":
		return fmt.Errorf("--op must be generate, decrypt or mixed, not %q", o.op)
	case o.concurrency < 1 || o.duration <= 0:
		return errors.New("--concurrency and --duration must be positive")
	case o.keys < 1:
		return fmt.Errorf("--keys must be positive, not %d", o.keys)
	case o.dist != "uniform" && o.dist != "zipf":
		return fmt.Errorf("--dist must be uniform or zipf, not %q", o.dist)
	case o.rate < 0:
		return fmt.Errorf("--rate must not be negative, not %v", o.rate)
	case o.churn < 0:
		return fmt.Errorf("--churn must not be negative, not %v", o.churn)
	case o.warmup < 0:
		return fmt.Errorf("--warmup must not be negative, not %v", o.warmup)
	}
	if _, err := parsePIDs(o.pids); err != nil {
		return err
	}
	_, err := parseStartAt(o.startAt)
	return err
}

// parseStartAt parses --start-at: unix seconds (fractions allowed) or an
// RFC 3339 time; "" is the zero time (start when the set-up is done).
func parseStartAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs > 0 {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--start-at: %q is neither unix seconds nor an RFC 3339 time: %w", s, err)
	}
	return t, nil
}

// run prepares the keys, runs the load and collects the figures.
func (o benchOptions) run(ctx context.Context, f *clientFlags) (benchResult, error) {
	pids, err := parsePIDs(o.pids)
	if err != nil {
		return benchResult{}, err
	}
	startAt, err := parseStartAt(o.startAt)
	if err != nil {
		return benchResult{}, err
	}
	probe := cpuProbe{proc: "/proc", pids: pids}
	if _, err := probe.ticks(); err != nil { // fail before the set-up
		return benchResult{}, err
	}
	base, proto, err := newBenchClient(f, o.http1, max(o.concurrency, benchSetupParallel))
	if err != nil {
		return benchResult{}, err
	}
	var nodes []*client.Client
	for _, ep := range base.Endpoints() {
		n, err := base.Node(ep)
		if err != nil {
			return benchResult{}, err
		}
		nodes = append(nodes, n)
	}
	names := benchKeyNames(o.name, o.keys)
	if err := createBenchKeys(ctx, base, names); err != nil {
		return benchResult{}, err
	}
	assoc := []byte(`{"bucket":"bucket/object"}`)
	var cts [][]byte
	if o.op != "generate" {
		if cts, err = sealBenchDEKs(ctx, base, names, assoc); err != nil {
			return benchResult{}, err
		}
	}
	ops := make([]benchOp, o.concurrency)
	for w := range ops {
		pick, err := newKeyPicker(o.dist, len(names), rand.Uint64())
		if err != nil {
			return benchResult{}, err
		}
		c := nodes[w%len(nodes)]
		if o.failover {
			c = base // every endpoint, failing over as MinIO does
		}
		ops[w] = func(ctx context.Context, i int) error {
			k := pick()
			if o.op == "generate" || (o.op == "mixed" && (w+i)%2 == 0) {
				_, err := c.GenerateKey(ctx, names[k], assoc)
				return err
			}
			_, err := c.Decrypt(ctx, names[k], cts[k], assoc)
			return err
		}
	}

	var (
		ticks0, ticks1 uint64
		m0, m1         []metricFamilies
	)
	plan := benchPlan{warmup: o.warmup, duration: o.duration, rate: o.rate}
	if o.churn > 0 {
		if err := sweepChurnKeys(ctx, nodes[0], o.name); err != nil {
			return benchResult{}, err
		}
		plan.churn = &churnPlan{rate: o.churn, op: newChurnOp(nodes[0], o.name)}
	}
	// The CPU is read last before and first after the window, so that the
	// metric scrapes (one request per endpoint) fall outside it.
	plan.before = func() (err error) {
		if o.metrics {
			if m0, err = scrapeMetrics(ctx, nodes); err != nil {
				return err
			}
		}
		ticks0, err = probe.ticks()
		return err
	}
	plan.after = func() (err error) {
		if ticks1, err = probe.ticks(); err != nil {
			return err
		}
		if o.metrics {
			m1, err = scrapeMetrics(ctx, nodes)
		}
		return err
	}
	var late time.Duration
	if !startAt.IsZero() {
		if late = -time.Until(startAt); late < 0 {
			if err := sleepCtx(ctx, -late); err != nil {
				return benchResult{}, fmt.Errorf("bench: waiting for --start-at: %w", err)
			}
			late = 0
		}
	}
	stats, err := runBench(ctx, plan, ops)
	if err != nil {
		return benchResult{}, fmt.Errorf("bench: %w", err)
	}

	res := benchResult{
		Op: o.op, Endpoints: len(nodes), Concurrency: o.concurrency, Keys: len(names), Dist: o.dist,
		Proto: proto.String(), Rate: o.rate, WarmupSeconds: o.warmup.Seconds(), StartLateSeconds: late.Seconds(),
	}
	stats.summarize(&res)
	if len(pids) > 0 {
		cpu := float64(ticks1-ticks0) / clockTicks
		res.CPUSeconds = &cpu
		if res.Requests > 0 {
			us := cpu * 1e6 / float64(res.Requests)
			res.CPUusPerRequest = &us
		}
	}
	if o.metrics {
		res.Metrics = metricDeltas(m0, m1, res.Requests)
	}
	if o.churn > 0 {
		res.Churn = stats.churn.result(o.churn, res.Seconds)
	}
	return res, nil
}

// printBench writes the human-readable report.
func printBench(p printer, res benchResult) {
	mode := "closed loop"
	if res.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g req/s", res.Rate)
	}
	p.Printf("%s on %d endpoint(s) over %s, %d workers, %s, %.1fs (after %.1fs warm-up)\n",
		res.Op, res.Endpoints, orDash(res.Proto), res.Concurrency, mode, res.Seconds, res.WarmupSeconds)
	p.Printf("  keys      %d (%s)\n", res.Keys, res.Dist)
	p.Printf("  requests  %d (%d errors)\n  rate      %.0f req/s\n  latency   p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		res.Requests, res.Errors, res.PerSecond, res.P50ms, res.P99ms, res.MaxMs)
	if res.StartLateSeconds > 0 {
		p.Printf("  start     %.2fs after --start-at (the set-up took longer)\n", res.StartLateSeconds)
	}
	if res.Rate > 0 {
		p.Printf("  schedule  %d dropped, %d late (> %v)\n", res.Dropped, res.Late, lateThreshold)
	}
	if res.CPUSeconds != nil {
		perReq := "-"
		if res.CPUusPerRequest != nil {
			perReq = fmt.Sprintf("%.1f µs/request", *res.CPUusPerRequest)
		}
		p.Printf("  server    %.2f s CPU, %s\n", *res.CPUSeconds, perReq)
	}
	if c := res.Churn; c != nil {
		p.Printf("  churn     %d creates/deletes done (%.1f/s of %g/s asked), %d failed, %d dropped; p50 %.2f ms, p99 %.2f ms\n",
			c.Done, c.PerSecond, c.Rate, c.Failed, c.Dropped, c.P50ms, c.P99ms)
	}
	if res.Metrics != nil {
		for i, bm := range benchMetrics {
			label := "metrics "
			if i > 0 {
				label = "        "
			}
			p.Printf("  %s  %s %s\n", label, bm.name, formatMetricDelta(res.Metrics[bm.name]))
		}
	}
}
