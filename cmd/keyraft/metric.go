package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newMetricCmd) }

func newMetricCmd() *cobra.Command {
	var (
		f    *clientFlags
		rate time.Duration
	)
	cmd := &cobra.Command{
		Use:     "metric",
		Aliases: []string{"metrics"},
		Short:   "Show request counts, latency and system metrics of a server",
		Long: `Read a server's metrics (/v1/metrics) and summarize them: requests by
outcome (2xx OK, 4xx rejected, 5xx failed), response time (average and
histogram percentiles), log events and system gauges.

With --rate, print the request rate and the average response time over each
interval until interrupted (Ctrl-C). Metrics are per server: with several
endpoints the first one is asked.`,
		Example: `  keyraft metric
  keyraft metric --rate 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("rate") && rate <= 0 {
				return fmt.Errorf("--rate must be positive, not %v", rate)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if c, err = c.Node(c.Endpoints()[0]); err != nil {
				return err
			}
			p := f.printer(cmd)
			if rate > 0 {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return runMetricRate(ctx, c, p, rate)
			}
			m, err := c.Metrics(cmd.Context())
			if err != nil {
				return fmt.Errorf("failed to read metrics: %w", err)
			}
			s := summarize(m)
			if p.json {
				return p.JSON(s)
			}
			printMetrics(p, s)
			return nil
		},
	}
	cmd.Flags().DurationVar(&rate, "rate", 0, "print rates over this interval until interrupted (e.g. 5s)")
	f = addClientFlags(cmd)
	return cmd
}

// The metric names of the KES v1 exposition.
const (
	mSuccess     = "kes_http_request_success"
	mError       = "kes_http_request_error"
	mFailure     = "kes_http_request_failure"
	mActive      = "kes_http_request_active"
	mRespTime    = "kes_http_response_time"
	mAuditEvents = "kes_log_audit_events"
	mErrorEvents = "kes_log_error_events"
)

// metricSummary is the JSON form of `metric`.
type metricSummary struct {
	Requests struct {
		Success float64 `json:"success"`
		Error   float64 `json:"error"`
		Failure float64 `json:"failure"`
		Active  float64 `json:"active"`
	} `json:"requests"`
	Latency struct {
		Count   float64  `json:"count"`
		Average float64  `json:"avg_seconds"`
		P50     float64  `json:"p50_seconds,omitempty"`
		P90     float64  `json:"p90_seconds,omitempty"`
		P99     float64  `json:"p99_seconds,omitempty"`
		Buckets []bucket `json:"buckets,omitempty"`
	} `json:"latency"`
	Log struct {
		Audit float64 `json:"audit_events"`
		Error float64 `json:"error_events"`
	} `json:"log"`
	System struct {
		UpTime      float64 `json:"uptime_seconds"`
		CPUs        float64 `json:"num_cpu"`
		UsableCPUs  float64 `json:"num_cpu_used"`
		Threads     float64 `json:"num_threads"`
		HeapUsed    float64 `json:"mem_heap_used"`
		HeapObjects float64 `json:"mem_heap_objects"`
		StackUsed   float64 `json:"mem_stack_used"`
	} `json:"system"`
}

// bucket is one cumulative histogram bucket: Count observations took at most
// LE seconds. LE is the bound as the server wrote it ("0.05", ..., "+Inf").
type bucket struct {
	LE    string  `json:"le"`
	Count float64 `json:"count"`
	le    float64
}

// summarize derives the summary from a metrics snapshot.
func summarize(m client.Metrics) metricSummary {
	var s metricSummary
	s.Requests.Success, s.Requests.Error = m.Value(mSuccess), m.Value(mError)
	s.Requests.Failure, s.Requests.Active = m.Value(mFailure), m.Value(mActive)
	s.Latency.Count = m.Value(mRespTime + "_count")
	if s.Latency.Count > 0 {
		s.Latency.Average = m.Value(mRespTime+"_sum") / s.Latency.Count
	}
	s.Latency.Buckets = histogramBuckets(string(m.Raw), mRespTime+"_bucket")
	s.Latency.P50 = quantile(s.Latency.Buckets, 0.5)
	s.Latency.P90 = quantile(s.Latency.Buckets, 0.9)
	s.Latency.P99 = quantile(s.Latency.Buckets, 0.99)
	s.Log.Audit, s.Log.Error = m.Value(mAuditEvents), m.Value(mErrorEvents)
	sys := &s.System
	sys.UpTime, sys.CPUs = m.Value("kes_system_up_time"), m.Value("kes_system_num_cpu")
	sys.UsableCPUs, sys.Threads = m.Value("kes_system_num_cpu_used"), m.Value("kes_system_num_threads")
	sys.HeapUsed, sys.HeapObjects = m.Value("kes_system_mem_heap_used"), m.Value("kes_system_mem_heap_objects")
	sys.StackUsed = m.Value("kes_system_mem_stack_used")
	return s
}

// histogramBuckets extracts the cumulative buckets of the sample name from
// Prometheus text, summing buckets with equal "le" over other labels, sorted
// by bound. Lines it cannot read are skipped.
func histogramBuckets(raw, name string) []bucket {
	sums := map[string]float64{}
	for _, line := range strings.Split(raw, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+"{")
		if !ok {
			continue
		}
		_, afterLE, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, afterVal, ok := strings.Cut(afterLE, `"`)
		if !ok {
			continue
		}
		_, value, ok := strings.Cut(afterVal, "}")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sums[le] += v
	}
	buckets := make([]bucket, 0, len(sums))
	for le, n := range sums {
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		buckets = append(buckets, bucket{LE: le, Count: n, le: bound})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	return buckets
}

// quantile returns the upper bound of the first bucket holding at least the
// q-quantile of the observations (0 with no observations or when that is
// the +Inf bucket).
func quantile(buckets []bucket, q float64) float64 {
	if len(buckets) == 0 {
		return 0
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0
	}
	for _, b := range buckets {
		if b.Count >= q*total {
			if math.IsInf(b.le, 1) {
				return 0
			}
			return b.le
		}
	}
	return 0
}

// printMetrics prints the summary for people.
func printMetrics(p printer, s metricSummary) {
	r := s.Requests
	p.Printf("Requests    %.0f total: %.0f OK (2xx), %.0f rejected (4xx), %.0f failed (5xx); %.0f active\n",
		r.Success+r.Error+r.Failure, r.Success, r.Error, r.Failure, r.Active)
	l := s.Latency
	if l.Count > 0 {
		p.Printf("Latency     avg %s over %.0f responses", seconds(l.Average), l.Count)
		if l.P50 > 0 {
			p.Printf("; p50 ≤ %s", seconds(l.P50))
		}
		if l.P90 > 0 {
			p.Printf(", p90 ≤ %s", seconds(l.P90))
		}
		if l.P99 > 0 {
			p.Printf(", p99 ≤ %s", seconds(l.P99))
		}
		p.Printf("\n")
		prev := 0.0
		for _, b := range l.Buckets {
			n := b.Count - prev
			prev = b.Count
			label := "≤ " + seconds(b.le)
			if math.IsInf(b.le, 1) {
				label = "> " + seconds(l.Buckets[max(len(l.Buckets)-2, 0)].le)
			}
			p.Printf("            %-10s %8.0f  %s\n", label, n, bar(n, l.Count))
		}
	} else {
		p.Printf("Latency     no responses yet\n")
	}
	p.Printf("Log events  %.0f audit, %.0f error\n", s.Log.Audit, s.Log.Error)
	sys := s.System
	p.Printf("System      up %s, %.0f/%.0f CPUs, %.0f goroutines, heap %s (%.0f objects), stack %s\n",
		time.Duration(sys.UpTime)*time.Second, sys.UsableCPUs, sys.CPUs, sys.Threads,
		formatBytes(sys.HeapUsed), sys.HeapObjects, formatBytes(sys.StackUsed))
}

// seconds renders a duration given in seconds.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// bar renders n out of total as a bar of up to 30 characters.
func bar(n, total float64) string {
	if total <= 0 || n <= 0 {
		return ""
	}
	return strings.Repeat("█", max(1, int(30*n/total)))
}

// rateJSON is one interval of `metric --rate`.
type rateJSON struct {
	Time        time.Time `json:"time"`
	Interval    float64   `json:"interval_seconds"`
	Requests    float64   `json:"requests_per_second"`
	Success     float64   `json:"success_per_second"`
	Error       float64   `json:"error_per_second"`
	Failure     float64   `json:"failure_per_second"`
	AvgLatency  float64   `json:"avg_latency_seconds"`
	Active      float64   `json:"active"`
	AuditEvents float64   `json:"audit_events_per_second"`
}

// runMetricRate samples the metrics every interval and prints the rates
// between consecutive samples until ctx ends (then it returns nil). A
// counter that went down (the server restarted) restarts the baseline.
func runMetricRate(ctx context.Context, c *client.Client, p printer, interval time.Duration) error {
	sample := func() (client.Metrics, time.Time, error) {
		m, err := c.Metrics(ctx)
		return m, time.Now(), err
	}
	prev, prevAt, err := sample()
	if err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("failed to read metrics: %w", err))
	}
	if !p.json {
		p.Printf("%-8s  %8s  %8s  %8s  %8s  %10s  %6s\n", "time", "req/s", "2xx/s", "4xx/s", "5xx/s", "avg time", "active")
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cur, at, err := sample()
		if err != nil {
			return ignoreCanceled(ctx, fmt.Errorf("failed to read metrics: %w", err))
		}
		r, ok := rates(prev, cur, at.Sub(prevAt))
		prev, prevAt = cur, at
		if !ok {
			continue
		}
		r.Time = at.UTC()
		if p.json {
			if err := p.Line(r); err != nil {
				return err
			}
			continue
		}
		p.Printf("%-8s  %8.1f  %8.1f  %8.1f  %8.1f  %10s  %6.0f\n", at.Format("15:04:05"),
			r.Requests, r.Success, r.Error, r.Failure, seconds(r.AvgLatency), r.Active)
	}
}

// rates computes per-second rates between two snapshots taken d apart. It
// reports false when a counter decreased (a restarted server).
func rates(prev, cur client.Metrics, d time.Duration) (rateJSON, bool) {
	secs := d.Seconds()
	if secs <= 0 {
		return rateJSON{}, false
	}
	delta := func(name string) (float64, bool) {
		v := cur.Value(name) - prev.Value(name)
		return v, v >= 0
	}
	var r rateJSON
	var ok [5]bool
	var success, errs, failure, count, audit float64
	success, ok[0] = delta(mSuccess)
	errs, ok[1] = delta(mError)
	failure, ok[2] = delta(mFailure)
	count, ok[3] = delta(mRespTime + "_count")
	audit, ok[4] = delta(mAuditEvents)
	for _, o := range ok {
		if !o {
			return rateJSON{}, false
		}
	}
	r.Interval = secs
	r.Success, r.Error, r.Failure = success/secs, errs/secs, failure/secs
	r.Requests = r.Success + r.Error + r.Failure
	r.AuditEvents = audit / secs
	if count > 0 {
		r.AvgLatency = (cur.Value(mRespTime+"_sum") - prev.Value(mRespTime+"_sum")) / count
	}
	r.Active = cur.Value(mActive)
	return r, true
}

// ignoreCanceled returns nil when err is due to ctx ending (an interrupt),
// else err.
func ignoreCanceled(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}
