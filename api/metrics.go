package api

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are KES's metric families (kes-api.md §1.3).
type metrics struct {
	success  *prometheus.CounterVec // 2xx, by code
	errors   *prometheus.CounterVec // 4xx, by code
	failures *prometheus.CounterVec // 5xx, by code
	active   prometheus.Gauge
	latency  prometheus.Histogram

	errorEvents prometheus.Counter
	auditEvents prometheus.Counter
}

// newMetrics creates the KES metrics and registers them, plus the system
// gauges, in reg. It fails if any is already registered there.
func newMetrics(reg prometheus.Registerer, start time.Time) (*metrics, error) {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kes", Subsystem: "http", Name: name, Help: help}, []string{"code"})
	}
	m := &metrics{
		success:  counter("request_success", "Number of requests that have been served successfully (HTTP 2xx)."),
		errors:   counter("request_error", "Number of requests that failed with a client error (HTTP 4xx)."),
		failures: counter("request_failure", "Number of requests that failed with a server error (HTTP 5xx)."),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kes", Subsystem: "http", Name: "request_active",
			Help: "Number of requests being served.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kes", Subsystem: "http", Name: "response_time",
			Help:    "Request response times in seconds.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10},
		}),
		errorEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "log", Name: "error_events",
			Help: "Number of error log events delivered to /v1/log/error subscribers.",
		}),
		auditEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "log", Name: "audit_events",
			Help: "Number of audit log events delivered to /v1/log/audit subscribers.",
		}),
	}
	for _, c := range []prometheus.Collector{m.success, m.errors, m.failures, m.active, m.latency, m.errorEvents, m.auditEvents, newSystemCollector(start)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

// count counts one finished request by its status code.
func (m *metrics) count(code int) {
	var vec *prometheus.CounterVec
	switch {
	case code >= 200 && code < 300:
		vec = m.success
	case code >= 400 && code < 500:
		vec = m.errors
	case code >= 500 && code < 600:
		vec = m.failures
	default:
		return
	}
	vec.WithLabelValues(strconv.Itoa(code)).Inc()
}

// systemCollector reports the kes_system_* gauges, reading the memory
// statistics once per scrape.
type systemCollector struct {
	start                                                     time.Time
	upTime, numCPU, numCPUUsed, threads, heap, objects, stack *prometheus.Desc
}

func newSystemCollector(start time.Time) *systemCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kes", "system", name), help, nil, nil)
	}
	return &systemCollector{
		start:      start,
		upTime:     desc("up_time", "The time the server has been up and running in seconds."),
		numCPU:     desc("num_cpu", "The number of logical CPUs available on the system."),
		numCPUUsed: desc("num_cpu_used", "The number of logical CPUs usable by the server (GOMAXPROCS)."),
		threads:    desc("num_threads", "The number of goroutines."),
		heap:       desc("mem_heap_used", "The number of bytes of allocated heap objects."),
		objects:    desc("mem_heap_objects", "The number of allocated heap objects."),
		stack:      desc("mem_stack_used", "The number of bytes of stack memory obtained from the OS."),
	}
}

// Describe implements prometheus.Collector.
func (c *systemCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.upTime, c.numCPU, c.numCPUUsed, c.threads, c.heap, c.objects, c.stack} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *systemCollector) Collect(ch chan<- prometheus.Metric) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.upTime, time.Since(c.start).Truncate(10*time.Millisecond).Seconds())
	gauge(c.numCPU, float64(runtime.NumCPU()))
	gauge(c.numCPUUsed, float64(runtime.GOMAXPROCS(0)))
	gauge(c.threads, float64(runtime.NumGoroutine()))
	gauge(c.heap, float64(mem.HeapAlloc))
	gauge(c.objects, float64(mem.HeapObjects))
	gauge(c.stack, float64(mem.StackSys))
}
