package systemtest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store/aws"
)

// TestAWSThrottledCreates sends 200 concurrent creates while Secrets
// Manager answers every fourth CreateSecret with ThrottlingException: the
// store's create queue and retries absorb it and every create succeeds.
func TestAWSThrottledCreates(t *testing.T) {
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, nil), awsNodeOptions{
		cache: config.Cache{Any: time.Hour, Unused: time.Hour}, healthInterval: time.Second,
	})
	cl := node.client(t)
	b.proxy.ResetCalls()
	b.proxy.InjectEvery("CreateSecret", 4, awstest.Throttle())

	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	took := awsTimed(func() {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = cl.CreateKey(bg, fmt.Sprintf("burst-%03d", i))
			}()
		}
		wg.Wait()
	})
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("create burst-%03d: %v", i, err)
		}
	}
	calls, throttled := b.proxy.Calls("CreateSecret"), b.proxy.Injected()
	t.Logf("throttling: %d creates in %v, %d failed; %d CreateSecret calls, %d answered ThrottlingException",
		n, took.Round(time.Millisecond), failed, calls, throttled)
	if throttled < n/5 || calls != n+throttled {
		t.Fatalf("%d CreateSecret calls with %d throttled: the fault was not exercised as intended", calls, throttled)
	}
	b.proxy.Clear()

	names, err := cl.ListAllKeys(bg, "burst-")
	if err != nil || len(names) != n {
		t.Fatalf("listed %d burst keys (%v), want %d", len(names), err, n)
	}
	inAWS := 0
	for _, name := range b.names(t) {
		if len(name) == len("burst-000") && name[:6] == "burst-" {
			inAWS++
		}
	}
	if inAWS != n {
		t.Fatalf("%d burst secrets in AWS, want %d", inAWS, n)
	}
	for _, i := range []int{0, 77, n - 1} {
		if _, err := cl.GenerateKey(bg, fmt.Sprintf("burst-%03d", i), nil); err != nil {
			t.Fatalf("generate with burst-%03d: %v", i, err)
		}
	}
}

// TestAWSOutage takes AWS away for 30 s. Cached keys keep serving
// (cache.expiry.offline is 1m), creates fail fast with 502, /v1/ready
// answers 504 and /v1/status reports the keystore unreachable; when AWS is
// back the node recovers on its own.
func TestAWSOutage(t *testing.T) {
	const (
		outage      = 30 * time.Second
		callTimeout = 5 * time.Second
		health      = 200 * time.Millisecond
		// fastFail bounds a create while the node knows AWS is offline.
		fastFail = time.Second
	)
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, func(c *aws.Config) { c.CallTimeout = callTimeout }), awsNodeOptions{
		// Revalidation runs several times during the outage and must
		// keep the cache because of cache.expiry.offline.
		cache:          config.Cache{Any: 3 * time.Second, Unused: time.Hour, Offline: time.Minute},
		healthInterval: health,
	})
	cl := node.client(t)
	keys := []string{"outage-a", "outage-b", "outage-c"}
	deks := map[string]client.DEK{}
	for _, k := range keys {
		if err := cl.CreateKey(bg, k); err != nil {
			t.Fatal(err)
		}
		dek, err := cl.GenerateKey(bg, k, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		deks[k] = dek
	}
	if err := cl.Ready(bg); err != nil {
		t.Fatalf("ready before the outage: %v", err)
	}

	b.proxy.SetDown(true)
	down := time.Now()
	testutil.Eventually(t, callTimeout+2*time.Second, "the node reports AWS unreachable", func() bool {
		st, err := cl.Status(bg)
		return err == nil && st.KeyStoreUnreachable && st.KeyStoreUnavailable
	})
	detected := time.Since(down)

	// Keep asserting for the whole window.
	var (
		rounds, created                int
		maxCreate, sumCreate, maxCache time.Duration
		outageDEKs                     = map[string]client.DEK{}
	)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(down) < outage {
		rounds++
		for _, k := range keys {
			d := awsTimed(func() {
				dek, err := cl.GenerateKey(bg, k, []byte("during"))
				if err != nil {
					t.Fatalf("round %d: generate with cached %s while AWS is down: %v", rounds, k, err)
				}
				outageDEKs[k] = dek
				pt, err := cl.Decrypt(bg, k, deks[k].Ciphertext, []byte(k))
				if err != nil || !bytes.Equal(pt, deks[k].Plaintext) {
					t.Fatalf("round %d: decrypt with cached %s while AWS is down: %v", rounds, k, err)
				}
			})
			maxCache = max(maxCache, d)
		}
		name := fmt.Sprintf("during-outage-%d", rounds)
		var err error
		d := awsTimed(func() { err = cl.CreateKey(bg, name) })
		if awsErrCode(err) != 502 {
			t.Fatalf("round %d: create while AWS is down: %v, want 502", rounds, err)
		}
		created++
		sumCreate += d
		maxCreate = max(maxCreate, d)
		if d > fastFail {
			t.Fatalf("round %d: create took %v while the node knows AWS is down, want < %v", rounds, d, fastFail)
		}
		if err := cl.Ready(bg); awsErrCode(err) != 504 {
			t.Fatalf("round %d: ready while AWS is down: %v, want 504", rounds, err)
		}
		if st, err := cl.Status(bg); err != nil || !st.KeyStoreUnreachable || !st.KeyStoreUnavailable {
			t.Fatalf("round %d: status while AWS is down: %+v, %v", rounds, st, err)
		}
		<-tick.C
	}
	window := time.Since(down)

	b.proxy.SetDown(false)
	up := time.Now()
	var readyAfter, createAfter time.Duration
	attempt := 0
	testutil.Eventually(t, 2*callTimeout, "ready and create work again", func() bool {
		if readyAfter == 0 && cl.Ready(bg) == nil {
			readyAfter = time.Since(up)
		}
		if createAfter == 0 {
			attempt++
			if cl.CreateKey(bg, fmt.Sprintf("after-outage-%d", attempt)) == nil {
				createAfter = time.Since(up)
			}
		}
		return readyAfter > 0 && createAfter > 0
	})
	for _, k := range keys {
		pt, err := cl.Decrypt(bg, k, outageDEKs[k].Ciphertext, []byte("during"))
		if err != nil || !bytes.Equal(pt, outageDEKs[k].Plaintext) {
			t.Fatalf("decrypt a DEK generated during the outage with %s: %v", k, err)
		}
	}
	if names, err := cl.ListAllKeys(bg, "during-outage-"); err != nil || len(names) != 0 {
		t.Fatalf("keys created during the outage: %v, %v", names, err)
	}
	t.Logf("outage: AWS down for %v (%d rounds of cached generate+decrypt, max %v); offline detected after %v; "+
		"%d creates answered 502 in max %v, mean %v; after AWS came back: ready 200 after %v, create OK after %v (%d attempts)",
		window.Round(time.Millisecond), rounds, maxCache.Round(time.Millisecond), detected.Round(time.Millisecond),
		created, maxCreate.Round(time.Millisecond), (sumCreate / time.Duration(created)).Round(time.Microsecond),
		readyAfter.Round(time.Millisecond), createAfter.Round(time.Millisecond), attempt)
}

// TestAWSHangNeverBlocksPastDeadline makes AWS accept every call and never
// answer. A create and a generate that needs AWS return an error within
// the store's call timeout; cached keys keep answering at once.
func TestAWSHangNeverBlocksPastDeadline(t *testing.T) {
	const (
		callTimeout = 2 * time.Second
		margin      = 2 * time.Second
	)
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, func(c *aws.Config) { c.CallTimeout = callTimeout }), awsNodeOptions{
		cache: config.Cache{Any: time.Hour, Unused: time.Hour, Offline: time.Hour}, healthInterval: 200 * time.Millisecond,
	})
	cl := node.client(t)
	if err := cl.CreateKey(bg, "cached"); err != nil {
		t.Fatal(err)
	}
	dek, err := cl.GenerateKey(bg, "cached", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.put(t, "only-in-aws", awsNewKeyValue(t, "kes"))

	b.proxy.Inject("", -1, awstest.Hang())
	t.Cleanup(b.proxy.Clear)

	type result struct {
		err  error
		took time.Duration
	}
	createDone, generateDone := make(chan result, 1), make(chan result, 1)
	go func() {
		var err error
		d := awsTimed(func() { err = cl.CreateKey(bg, "new-while-hung") })
		createDone <- result{err, d}
	}()
	go func() {
		var err error
		d := awsTimed(func() { _, err = cl.GenerateKey(bg, "only-in-aws", nil) })
		generateDone <- result{err, d}
	}()

	// While those wait on AWS, the cached key answers at once.
	var maxCached time.Duration
	for range 20 {
		d := awsTimed(func() {
			pt, err := cl.Decrypt(bg, "cached", dek.Ciphertext, nil)
			if err != nil || !bytes.Equal(pt, dek.Plaintext) {
				t.Errorf("decrypt with the cached key while AWS hangs: %v", err)
			}
			if _, err := cl.GenerateKey(bg, "cached", nil); err != nil {
				t.Errorf("generate with the cached key while AWS hangs: %v", err)
			}
		})
		maxCached = max(maxCached, d)
	}
	if maxCached > 500*time.Millisecond {
		t.Errorf("cached generate+decrypt took up to %v while AWS hangs", maxCached)
	}

	deadline := time.After(callTimeout + margin)
	var create, generate result
	for i := 0; i < 2; i++ {
		select {
		case create = <-createDone:
		case generate = <-generateDone:
		case <-deadline:
			t.Fatalf("a request that needs AWS is still blocked %v after it started (call timeout %v)", callTimeout+margin, callTimeout)
		}
	}
	if code := awsErrCode(create.err); code != 502 {
		t.Errorf("create while AWS hangs: %v, want 502", create.err)
	}
	if code := awsErrCode(generate.err); code != 502 {
		t.Errorf("generate with a key only in AWS while AWS hangs: %v, want 502", generate.err)
	}
	t.Logf("hung AWS: create answered %v after %v, generate of an uncached key %v after %v (call timeout %v); cached generate+decrypt max %v",
		awsErrCode(create.err), create.took.Round(time.Millisecond), awsErrCode(generate.err), generate.took.Round(time.Millisecond),
		callTimeout, maxCached.Round(time.Millisecond))

	// Once the node knows AWS is unresponsive it answers without waiting.
	testutil.Eventually(t, callTimeout+margin, "the node reports AWS unreachable", func() bool {
		st, err := cl.Status(bg)
		return err == nil && st.KeyStoreUnreachable
	})
	var err2 error
	if d := awsTimed(func() { err2 = cl.CreateKey(bg, "new-while-hung-2") }); awsErrCode(err2) != 502 || d > 500*time.Millisecond {
		t.Errorf("create once the node knows AWS hangs: %v after %v, want a fast 502", err2, d)
	}

	b.proxy.Clear()
	testutil.Eventually(t, 2*callTimeout, "create works once AWS answers again", func() bool {
		return cl.CreateKey(bg, "after-hang") == nil
	})
	if _, err := cl.GenerateKey(bg, "only-in-aws", nil); err != nil {
		t.Fatalf("key only in AWS after the hang: %v", err)
	}
}
