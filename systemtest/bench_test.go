package systemtest

import (
	"context"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
)

// benchNode starts a dev node and returns an admin client for it with a
// key "bench" created.
func benchNode(b *testing.B) *client.Client {
	b.Helper()
	cfg, key, err := server.DevConfig(b.TempDir(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apiLn, raftLn := testutil.Listen(b), testutil.Listen(b)
	srv, err := server.Start(ctx, cfg, server.Options{APIListener: apiLn, RaftListener: raftLn, AuditOut: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	c, err := client.New([]string{"https://" + srv.Addr().String()}, client.WithAPIKey(key), client.WithInsecureSkipVerify())
	if err != nil {
		b.Fatal(err)
	}
	if err := c.CreateKey(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	return c
}

// latencies collects per-request durations to report p50/p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	if len(l.d) == 0 {
		return
	}
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "req/s")
}

// BenchmarkGenerate measures POST /v1/key/generate from 32 concurrent
// clients over real TLS (HTTP/2) on one node.
func BenchmarkGenerate(b *testing.B) {
	c := benchNode(b)
	ctx := context.Background()
	var lat latencies
	b.SetParallelism(16) // 16 × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := time.Now()
			if _, err := c.GenerateKey(ctx, "bench", []byte(`{"bucket":"bucket/object"}`)); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t))
		}
	})
	lat.report(b, time.Since(start))
}

// BenchmarkDecrypt measures POST /v1/key/decrypt like BenchmarkGenerate.
func BenchmarkDecrypt(b *testing.B) {
	c := benchNode(b)
	ctx := context.Background()
	assoc := []byte(`{"bucket":"bucket/object"}`)
	dek, err := c.GenerateKey(ctx, "bench", assoc)
	if err != nil {
		b.Fatal(err)
	}
	var lat latencies
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := time.Now()
			if _, err := c.Decrypt(ctx, "bench", dek.Ciphertext, assoc); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t))
		}
	})
	lat.report(b, time.Since(start))
}
