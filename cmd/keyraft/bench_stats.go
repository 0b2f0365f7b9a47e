package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keyraft/keyraft/api/client"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports (the kernel converts its
// internal HZ to it for user space).
const clockTicks = 100

// parsePIDs parses a comma-separated list of process ids ("" is none).
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("--server-pids: %q is not a process id", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// parseProcStat returns utime+stime, in clock ticks, from the contents of a
// /proc/<pid>/stat file. The command name (field 2) is in parentheses and may
// itself contain spaces and parentheses, so the fields are counted from the
// last ')'.
func parseProcStat(stat []byte) (uint64, error) {
	s := string(stat)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", s)
	}
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	fields := strings.Fields(s[end+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("only %d fields after the command name", len(fields))
	}
	utime, err := strconv.ParseUint(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// cpuProbe reads the CPU time of local processes from procfs.
type cpuProbe struct {
	proc string // the procfs mount point, "/proc"
	pids []int
}

// ticks returns the summed utime+stime of the probe's processes, in clock
// ticks (all threads of each process are included).
func (p cpuProbe) ticks() (uint64, error) {
	var sum uint64
	for _, pid := range p.pids {
		b, err := os.ReadFile(filepath.Join(p.proc, strconv.Itoa(pid), "stat"))
		if err != nil {
			return 0, fmt.Errorf("server CPU of pid %d: %w", pid, err)
		}
		t, err := parseProcStat(b)
		if err != nil {
			return 0, fmt.Errorf("server CPU of pid %d: %w", pid, err)
		}
		sum += t
	}
	return sum, nil
}

// The server counters whose change over the measured window bench reports.
const (
	metricRaftApplies   = "keyraft_raft_applies_total"
	metricKeystoreCalls = "keyraft_keystore_calls_total"
	metricCacheUnseal   = "keyraft_cache_unseal_total"
)

// benchMetrics lists the reported counters and the label each one is broken
// down by ("" for the total only).
var benchMetrics = []struct{ name, label string }{
	{metricRaftApplies, "type"},
	{metricKeystoreCalls, "op"},
	{metricCacheUnseal, ""},
}

// metricDelta is the change of one counter over the measured window, summed
// over the endpoints.
type metricDelta struct {
	Total      float64            `json:"total"`
	PerRequest float64            `json:"per_request"`     // Total divided by the requests of the window
	Label      string             `json:"label,omitempty"` // the label By is keyed by
	By         map[string]float64 `json:"by,omitempty"`    // Total per value of Label
}

// metricFamilies is one parsed exposition, by metric family name.
type metricFamilies = map[string]*dto.MetricFamily

// parseExposition parses a Prometheus text exposition (format 0.0.4).
func parseExposition(raw []byte) (metricFamilies, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the metrics: %w", err)
	}
	return fams, nil
}

// scrapeMetrics reads and parses /v1/metrics of every node, in order.
func scrapeMetrics(ctx context.Context, nodes []*client.Client) ([]metricFamilies, error) {
	out := make([]metricFamilies, len(nodes))
	for i, n := range nodes {
		m, err := n.Metrics(ctx)
		if err != nil {
			return nil, fmt.Errorf("failed to read the metrics of %s: %w", n.Endpoints()[0], err)
		}
		if out[i], err = parseExposition(m.Raw); err != nil {
			return nil, fmt.Errorf("%s: %w", n.Endpoints()[0], err)
		}
	}
	return out, nil
}

// sampleValue returns the value of a counter, gauge or untyped sample.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// labelValue returns the value of the named label of m ("" when unset).
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// familySums returns the sum of a family's samples and, when label is not
// empty, the sums per value of that label.
func familySums(f *dto.MetricFamily, label string) (total float64, by map[string]float64) {
	if label != "" {
		by = map[string]float64{}
	}
	for _, m := range f.GetMetric() {
		v := sampleValue(m)
		total += v
		if by != nil {
			by[labelValue(m, label)] += v
		}
	}
	return total, by
}

// metricDeltas returns, for each of benchMetrics, its change from before to
// after, summed over the endpoints (before[i] and after[i] are the same
// endpoint's), divided by requests for PerRequest. A metric that no endpoint
// exports after the window maps to nil: absent, which is not 0. A family or
// label value missing before the window counts as 0 then, because counter
// vectors only export a label value once it has been counted.
func metricDeltas(before, after []metricFamilies, requests int64) map[string]*metricDelta {
	out := make(map[string]*metricDelta, len(benchMetrics))
	for _, bm := range benchMetrics {
		var d *metricDelta
		for i, fams := range after {
			f, ok := fams[bm.name]
			if !ok {
				continue
			}
			if d == nil {
				d = &metricDelta{Label: bm.label}
				if bm.label != "" {
					d.By = map[string]float64{}
				}
			}
			total, by := familySums(f, bm.label)
			d.Total += total
			for v, n := range by {
				d.By[v] += n
			}
			if i < len(before) {
				if f0, ok := before[i][bm.name]; ok {
					total, by := familySums(f0, bm.label)
					d.Total -= total
					for v, n := range by {
						d.By[v] -= n
					}
				}
			}
		}
		if d != nil && requests > 0 {
			d.PerRequest = d.Total / float64(requests)
		}
		out[bm.name] = d
	}
	return out
}

// formatMetricDelta renders a delta for people: "absent", or the total, the
// total per request and the label values that changed.
func formatMetricDelta(d *metricDelta) string {
	if d == nil {
		return "absent"
	}
	s := fmt.Sprintf("%s (%.3g/request)", strconv.FormatFloat(d.Total, 'f', -1, 64), d.PerRequest)
	vals := make([]string, 0, len(d.By))
	for v, n := range d.By {
		if n != 0 {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return s
	}
	sort.Strings(vals)
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%s=%s", v, strconv.FormatFloat(d.By[v], 'f', -1, 64))
	}
	return s + " " + d.Label + "{" + strings.Join(parts, " ") + "}"
}
