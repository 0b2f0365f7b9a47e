package systemtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
)

// Timings of TestProcessClusterFailover.
const (
	loadDuration   = 30 * time.Second
	killAfter      = 10 * time.Second
	loadWorkers    = 8
	benchDuration  = "5s"
	failoverBudget = 15 * time.Second // give up on the write probe after this
)

// TestProcessClusterFailover runs the built keyraft binary as three
// processes (node 1 bootstraps, nodes 2 and 3 join through node 1's API),
// measures generate+decrypt throughput on one node and spread over three,
// then drives 30 s of generate/decrypt from 8 clients that each know all
// three endpoints, SIGKILLs the leader 10 s in, and checks that no request
// failed, how long writes were unavailable, and that the survivors agree.
func TestProcessClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a 3-process cluster for about a minute")
	}
	c := newProcCluster(t, "n1", "n2", "n3")
	c.start("n1")
	c.start("n2", c.nodes["n1"].endpoint())
	c.start("n3", c.nodes["n1"].endpoint())
	c.waitMembers("n3", 3, 30*time.Second)
	c.checkAlive()

	measureThroughput(t, c)

	admin := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const key = "process-load"
	if err := admin.CreateKey(ctx, key); err != nil {
		t.Fatalf("create %s: %v", key, err)
	}

	perNode := map[string]*client.Client{}
	for _, id := range c.order {
		perNode[id] = c.client(id)
	}
	var clients []*client.Client
	for range loadWorkers {
		clients = append(clients, c.client("n1", "n2", "n3"))
	}
	var killedAt atomic.Pointer[time.Time]
	killed := func() time.Time {
		if p := killedAt.Load(); p != nil {
			return *p
		}
		return time.Time{}
	}
	start := time.Now()
	end := start.Add(loadDuration)

	type killResult struct {
		leader    string
		survivors []string
		probe     failoverProbe
	}
	done := make(chan killResult, 1)
	go func() {
		<-time.After(time.Until(start.Add(killAfter)))
		var r killResult
		defer func() { done <- r }()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := admin.ClusterStatus(sctx)
		scancel()
		if err != nil || st.Leader == "" {
			t.Errorf("cluster status before the kill: leader %q, %v", st.Leader, err)
			return
		}
		r.leader = st.Leader
		c.kill(r.leader)
		now := time.Now()
		killedAt.Store(&now)
		var nodes []*client.Client
		for _, id := range c.order {
			if id != r.leader {
				r.survivors = append(r.survivors, id)
				nodes = append(nodes, perNode[id])
			}
		}
		r.probe = pollCreate(nodes, "after-failover", now, failoverBudget)
	}()

	stats := runLoad(clients, key, end, killed)
	elapsed := time.Since(start)
	kr := <-done
	if t.Failed() {
		t.FailNow()
	}

	t.Logf("load: %d workers x %v over 3 processes: %d requests (%.0f req/s), %d failed, %d wrong plaintexts; "+
		"%d completed after the kill, slowest of those %v",
		loadWorkers, elapsed.Round(time.Millisecond), stats.total.Load(), float64(stats.total.Load())/elapsed.Seconds(),
		stats.failed.Load(), stats.wrong.Load(), stats.afterKill.Load(), time.Duration(stats.maxAfterKill.Load()).Round(time.Millisecond))
	t.Logf("failover: killed leader %s (SIGKILL) %v into the run; first key create succeeded %v after the kill "+
		"(%d create attempts started every 100 ms, %d failed)", kr.leader, killAfter, kr.probe.after.Round(time.Millisecond),
		kr.probe.attempts, kr.probe.failed)
	for _, e := range kr.probe.errors {
		t.Logf("  create while failing over: %s", e)
	}
	for _, e := range stats.errors {
		t.Logf("  failed request: %s", e)
	}

	if stats.total.Load() == 0 || stats.afterKill.Load() == 0 {
		t.Fatalf("the load made %d requests, %d after the kill", stats.total.Load(), stats.afterKill.Load())
	}
	if n := stats.failed.Load(); n != 0 {
		t.Errorf("%d of %d generate/decrypt requests failed (want 0)", n, stats.total.Load())
	}
	if kr.probe.key == "" {
		t.Fatalf("no key create succeeded within %v of killing the leader", failoverBudget)
	}
	c.checkAlive()
	checkSurvivorsAgree(t, c, kr.leader, kr.survivors, kr.probe.key)
}

// checkSurvivorsAgree polls until both survivors name the same new leader,
// one of them, then checks that the key created after the failover is
// described by both and that a data key generated on one decrypts on the
// other.
func checkSurvivorsAgree(t *testing.T, c *procCluster, killed string, survivors []string, key string) {
	t.Helper()
	if len(survivors) != 2 {
		t.Fatalf("survivors %v, want 2", survivors)
	}
	deadline := time.Now().Add(30 * time.Second)
	var leaders []string
	for {
		leaders = leaders[:0]
		for _, id := range survivors {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := c.client(id).ClusterStatus(ctx)
			cancel()
			if err != nil {
				leaders = append(leaders, "error: "+err.Error())
				continue
			}
			leaders = append(leaders, st.Leader)
		}
		if leaders[0] == leaders[1] && leaders[0] != killed && (leaders[0] == survivors[0] || leaders[0] == survivors[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("survivors %v report leaders %q, want one survivor", survivors, leaders)
		}
		<-time.After(50 * time.Millisecond)
	}
	t.Logf("survivors %v agree on the new leader %s", survivors, leaders[0])

	for _, id := range survivors {
		cl := c.client(id)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			info, err := cl.DescribeKey(ctx, key)
			cancel()
			if err == nil && info.Name == key {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: describe %s after failover: %+v, %v", id, key, info, err)
			}
			<-time.After(50 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assoc := []byte("after failover")
	dek, err := c.client(survivors[0]).GenerateKey(ctx, key, assoc)
	if err != nil {
		t.Fatalf("%s: generate with %s: %v", survivors[0], key, err)
	}
	defer clear(dek.Plaintext)
	pt, err := c.client(survivors[1]).Decrypt(ctx, key, dek.Ciphertext, assoc)
	if err != nil {
		t.Fatalf("%s: decrypt a data key of %s generated on %s: %v", survivors[1], key, survivors[0], err)
	}
	defer clear(pt)
	if string(pt) != string(dek.Plaintext) {
		t.Fatalf("%s decrypted a different data key than %s generated", survivors[1], survivors[0])
	}
}

// benchJSON is the part of `keyraft bench --json` the test reads.
type benchJSON struct {
	Endpoints int     `json:"endpoints"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	PerSecond float64 `json:"requests_per_second"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

// measureThroughput runs the built `keyraft bench` (mixed generate and
// decrypt, 32 workers) against one node and then against all three, and
// logs both results. It asserts only that each run worked: the numbers
// depend on the machine (on two cores three nodes share the same CPUs).
func measureThroughput(t *testing.T, c *procCluster) {
	t.Helper()
	one := c.nodes[c.order[0]].endpoint()
	var all []string
	for _, id := range c.order {
		all = append(all, c.nodes[id].endpoint())
	}
	r1 := runBenchCmd(t, c, one)
	r3 := runBenchCmd(t, c, strings.Join(all, ","))
	t.Logf("throughput (keyraft bench --op mixed --concurrency 32 --duration %s): one node %.0f req/s (p50 %.2f ms, p99 %.2f ms); "+
		"three nodes %.0f req/s (p50 %.2f ms, p99 %.2f ms); ratio %.2f",
		benchDuration, r1.PerSecond, r1.P50ms, r1.P99ms, r3.PerSecond, r3.P50ms, r3.P99ms, r3.PerSecond/r1.PerSecond)
}

func runBenchCmd(t *testing.T, c *procCluster, servers string) benchJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, "bench", "--json", "-k", "--op", "mixed",
		"--duration", benchDuration, "--concurrency", "32", "--server", servers)
	// The API key goes through the environment, not the command line; other
	// client variables of the caller's environment must not interfere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KES_") && !strings.HasPrefix(kv, "MINIO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KES_API_KEY="+c.admin.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyraft bench --server %s: %v\n%s", servers, err, stderr.String())
	}
	var r benchJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("keyraft bench output %q: %v", out, err)
	}
	if want := strings.Count(servers, ",") + 1; r.Endpoints != want || r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("keyraft bench --server %s: %+v, want %d endpoints, requests and no errors", servers, r, want)
	}
	return r
}
