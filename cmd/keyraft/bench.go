package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

// benchResult is the JSON form of `keyraft bench`.
type benchResult struct {
	Op          string  `json:"op"`
	Endpoints   int     `json:"endpoints"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	PerSecond   float64 `json:"requests_per_second"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
}

func newBenchCmd() *cobra.Command {
	var (
		f           *clientFlags
		duration    time.Duration
		concurrency int
		op, key     string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure generate/decrypt throughput and latency against the server(s)",
		Long: `Drive generate and/or decrypt requests from concurrent workers for a fixed
time and report requests per second and latency percentiles. With several
--server endpoints the workers are spread over them round-robin, one
connection pool per endpoint, so the cluster's throughput is measured. The
key is created if it does not exist.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if op != "generate" && op != "decrypt" && op != "mixed" {
				return fmt.Errorf("--op must be generate, decrypt or mixed, not %q", op)
			}
			if concurrency < 1 || duration <= 0 {
				return errors.New("--concurrency and --duration must be positive")
			}
			base, err := f.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := base.CreateKey(ctx, key); err != nil && !errors.Is(err, client.ErrKeyExists) {
				return fmt.Errorf("failed to create key %q: %w", key, err)
			}
			var nodes []*client.Client
			for _, ep := range base.Endpoints() {
				n, err := base.Node(ep)
				if err != nil {
					return err
				}
				nodes = append(nodes, n)
			}
			assoc := []byte(`{"bucket":"bucket/object"}`)
			dek, err := base.GenerateKey(ctx, key, assoc)
			if err != nil {
				return fmt.Errorf("failed to generate a data key: %w", err)
			}
			res := runBench(ctx, nodes, concurrency, duration, func(ctx context.Context, c *client.Client, i int) error {
				if op == "generate" || (op == "mixed" && i%2 == 0) {
					_, err := c.GenerateKey(ctx, key, assoc)
					return err
				}
				_, err := c.Decrypt(ctx, key, dek.Ciphertext, assoc)
				return err
			})
			res.Op = op
			p := f.printer(cmd)
			if p.json {
				return p.JSON(res)
			}
			p.Printf("%s on %d endpoint(s), %d workers, %.1fs\n", op, res.Endpoints, res.Concurrency, res.Seconds)
			p.Printf("  requests  %d (%d errors)\n  rate      %.0f req/s\n  latency   p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
				res.Requests, res.Errors, res.PerSecond, res.P50ms, res.P99ms, res.MaxMs)
			return nil
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "number of concurrent workers")
	cmd.Flags().StringVar(&op, "op", "mixed", "generate, decrypt or mixed")
	cmd.Flags().StringVar(&key, "name", "keyraft-bench", "key to use (created if missing)")
	f = addClientFlags(cmd)
	return cmd
}

// runBench runs do from concurrency workers, spread round-robin over
// nodes, until d has passed, and summarizes the latencies.
func runBench(ctx context.Context, nodes []*client.Client, concurrency int, d time.Duration, do func(context.Context, *client.Client, int) error) benchResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		errs int64
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := nodes[w%len(nodes)]
			var mine []time.Duration
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				err := do(ctx, c, w+i)
				if ctx.Err() != nil {
					break // the run ended mid-request: neither a result nor an error
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res := benchResult{Endpoints: len(nodes), Concurrency: concurrency, Seconds: elapsed.Seconds(), Requests: int64(len(lat)), Errors: errs}
	if n := len(lat); n > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.PerSecond = float64(n) / elapsed.Seconds()
		res.P50ms, res.P99ms, res.MaxMs = ms(lat[n/2]), ms(lat[(n-1)*99/100]), ms(lat[n-1])
	}
	return res
}
