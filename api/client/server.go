package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// VersionInfo is the server's build (GET /version).
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
}

// State is a server's status (GET /v1/status).
type State struct {
	Version    string        // server version
	OS, Arch   string        // GOOS, GOARCH
	UpTime     time.Duration // from "uptime", integer seconds
	CPUs       int           // "num_cpu"
	UsableCPUs int           // "num_cpu_used" (GOMAXPROCS)
	HeapAlloc  uint64        // "mem_heap_used", bytes
	StackAlloc uint64        // "mem_stack_used", bytes

	// KeyStoreLatency is "keystore_latency", milliseconds on the wire; 0
	// when the keystore is unreachable.
	KeyStoreLatency     time.Duration
	KeyStoreUnreachable bool // "keystore_unreachable"
	KeyStoreUnavailable bool // "keystore_unavailable" (older servers and Keyraft)
}

// UnmarshalJSON decodes the /v1/status body. uptime (seconds) and
// keystore_latency (milliseconds) may be integers or decimals.
func (s *State) UnmarshalJSON(b []byte) error {
	var raw struct {
		Version     string   `json:"version"`
		OS          string   `json:"os"`
		Arch        string   `json:"arch"`
		UpTime      *float64 `json:"uptime"`
		CPUs        int      `json:"num_cpu"`
		UsableCPUs  int      `json:"num_cpu_used"`
		HeapAlloc   uint64   `json:"mem_heap_used"`
		StackAlloc  uint64   `json:"mem_stack_used"`
		Latency     *float64 `json:"keystore_latency"`
		Unreachable bool     `json:"keystore_unreachable"`
		Unavailable bool     `json:"keystore_unavailable"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = State{
		Version: raw.Version, OS: raw.OS, Arch: raw.Arch,
		CPUs: raw.CPUs, UsableCPUs: raw.UsableCPUs,
		HeapAlloc: raw.HeapAlloc, StackAlloc: raw.StackAlloc,
		KeyStoreUnreachable: raw.Unreachable, KeyStoreUnavailable: raw.Unavailable,
	}
	if raw.UpTime != nil {
		s.UpTime = scaled(*raw.UpTime, time.Second)
	}
	if raw.Latency != nil {
		s.KeyStoreLatency = scaled(*raw.Latency, time.Millisecond)
	}
	return nil
}

// scaled converts v units to a Duration, saturating instead of overflowing.
func scaled(v float64, unit time.Duration) time.Duration {
	d := v * float64(unit)
	switch {
	case math.IsNaN(d) || d <= 0:
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(d)
}

// API is one route the server offers (GET /v1/api).
type API struct {
	Method  string        // HTTP method, e.g. "PUT"
	Path    string        // route path; a trailing "/" marks a prefix route
	MaxBody int64         // request body limit in bytes
	Timeout time.Duration // from "timeout", whole seconds on the wire
}

// Version returns the server's version (GET /version, no authentication needed).
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.call(ctx, &request{method: "GET", path: "/version", idempotent: true}, &v)
	return v, err
}

// Ready returns nil when a server is ready to serve, i.e. its keystore is
// reachable (GET /v1/ready); else an Error (KES: 504 unreachable, 502 unavailable).
func (c *Client) Ready(ctx context.Context) error {
	return c.call(ctx, &request{method: "GET", path: "/v1/ready", idempotent: true}, nil)
}

// Status returns a server's status (GET /v1/status). With several endpoints
// it is the status of whichever node answered; use Node to ask a specific one.
func (c *Client) Status(ctx context.Context) (State, error) {
	var s State
	err := c.call(ctx, &request{method: "GET", path: "/v1/status", idempotent: true}, &s)
	return s, err
}

// APIs returns the routes the server offers (GET /v1/api).
func (c *Client) APIs(ctx context.Context) ([]API, error) {
	var raw []struct {
		Method  string  `json:"method"`
		Path    string  `json:"path"`
		MaxBody int64   `json:"max_body"`
		Timeout float64 `json:"timeout"`
	}
	if err := c.call(ctx, &request{method: "GET", path: "/v1/api", idempotent: true}, &raw); err != nil {
		return nil, err
	}
	apis := make([]API, len(raw))
	for i, a := range raw {
		apis[i] = API{Method: a.Method, Path: a.Path, MaxBody: a.MaxBody, Timeout: scaled(a.Timeout, time.Second)}
	}
	return apis, nil
}

// Metrics returns a server's Prometheus metrics (GET /v1/metrics, text
// exposition format requested). The raw text is kept; Samples holds, per
// metric name, the sum of its samples over all label sets (e.g.
// Samples["kes_http_request_success"] is the number of 2xx answers). It fails
// when the text is not in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (Metrics, error) {
	resp, err := c.send(ctx, &request{method: "GET", path: "/v1/metrics", idempotent: true, accept: "text/plain; version=0.0.4"})
	if err != nil {
		return Metrics{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Metrics{}, fmt.Errorf("client: GET /v1/metrics: %w", err)
	}
	samples, err := parseMetrics(raw)
	if err != nil {
		return Metrics{}, fmt.Errorf("client: GET /v1/metrics: %w", err)
	}
	return Metrics{Raw: raw, Samples: samples}, nil
}
