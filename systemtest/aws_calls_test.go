package systemtest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store/aws"
)

// TestAWSCallsCachedCrypto: 10,000 generate/decrypt requests on cached keys
// cost no AWS call at all (health checks and revalidation are set to 1h so
// that nothing else calls AWS in the window).
func TestAWSCallsCachedCrypto(t *testing.T) {
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, nil), awsNodeOptions{
		cache: config.Cache{Any: time.Hour, Unused: time.Hour}, healthInterval: time.Hour,
	})
	keys := []string{"hot-1", "hot-2", "hot-3", "hot-4"}
	setup := node.client(t)
	deks := map[string]client.DEK{}
	for _, k := range keys {
		if err := setup.CreateKey(bg, k); err != nil {
			t.Fatal(err)
		}
		dek, err := setup.GenerateKey(bg, k, []byte("ctx-"+k))
		if err != nil {
			t.Fatal(err)
		}
		deks[k] = dek
	}

	const (
		clients   = 8
		perClient = 1250 // half generate, half decrypt
	)
	b.proxy.ResetCalls()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	took := awsTimed(func() {
		for c := range clients {
			cl := node.client(t) // a connection of its own
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perClient {
					k := keys[(c+i)%len(keys)]
					if i%2 == 0 {
						if _, err := cl.GenerateKey(bg, k, []byte("ctx-"+k)); err != nil {
							errs <- fmt.Errorf("client %d generate %s: %w", c, k, err)
							return
						}
						continue
					}
					pt, err := cl.Decrypt(bg, k, deks[k].Ciphertext, []byte("ctx-"+k))
					if err == nil && !bytes.Equal(pt, deks[k].Plaintext) {
						err = errors.New("wrong plaintext")
					}
					if err != nil {
						errs <- fmt.Errorf("client %d decrypt %s: %w", c, k, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	calls := b.proxy.Calls("")
	t.Logf("AWS calls: %d for %d generate/decrypt requests on %d cached keys (%d clients, %v, %.0f req/s)",
		calls, clients*perClient, len(keys), clients, took.Round(time.Millisecond), float64(clients*perClient)/took.Seconds())
	if calls != 0 {
		t.Fatalf("%d AWS calls (%d GetSecretValue, %d ListSecrets) for requests on cached keys, want 0",
			calls, b.proxy.Calls("GetSecretValue"), b.proxy.Calls("ListSecrets"))
	}
}

// TestAWSKeyReadOncePerCluster: a key that exists only in AWS, used at the
// same time on all three nodes of a cluster, is read from AWS exactly once
// and then served from the replicated sealed cache by every node.
func TestAWSKeyReadOncePerCluster(t *testing.T) {
	b := newAWSBackend(t)
	c := newTestCluster(t, "n1", "n2", "n3")
	c.startWith("n1", "n1", nil, b.open(t, nil, nil))
	join := []string{"https://" + c.nodes["n1"].apiAddr}
	c.startWith("n2", "n2", join, b.open(t, nil, nil))
	c.startWith("n3", "n3", join, b.open(t, nil, nil))
	ids := []string{"n1", "n2", "n3"}

	b.put(t, "from-kes", awsNewKeyValue(t, "kes"))
	b.proxy.ResetCalls()

	const perNode = 8
	var wg sync.WaitGroup
	errs := make(chan error, len(ids)*perNode)
	deks := make(chan client.DEK, len(ids)*perNode)
	start := make(chan struct{})
	for _, id := range ids {
		for range perNode {
			cl := c.client(id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				dek, err := cl.GenerateKey(bg, "from-kes", []byte(id))
				if err != nil {
					errs <- fmt.Errorf("first use on %s: %w", id, err)
					return
				}
				deks <- dek
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	gets := b.proxy.Calls("GetSecretValue")
	t.Logf("AWS reads: %d GetSecretValue for one key used by %d concurrent requests on %d nodes", gets, len(ids)*perNode, len(ids))
	if gets != 1 {
		t.Fatalf("%d GetSecretValue calls for one key used on %d nodes, want 1", gets, len(ids))
	}
	// Every node decrypts what any node generated, still without AWS.
	close(deks)
	for dek := range deks {
		for _, id := range ids {
			if _, err := c.client(id).Decrypt(bg, "from-kes", dek.Ciphertext, nil); !errors.Is(err, client.ErrDecrypt) {
				// The context was the generating node's id; nil must not open it.
				t.Fatalf("decrypt on %s without context: %v, want %v", id, err, client.ErrDecrypt)
			}
		}
	}
	for _, id := range ids {
		for _, from := range ids {
			dek, err := c.client(from).GenerateKey(bg, "from-kes", nil)
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := c.client(id).Decrypt(bg, "from-kes", dek.Ciphertext, nil); err != nil || !bytes.Equal(pt, dek.Plaintext) {
				t.Fatalf("decrypt on %s of a DEK from %s: %v", id, from, err)
			}
		}
	}
	if gets := b.proxy.Calls("GetSecretValue"); gets != 1 {
		t.Fatalf("%d GetSecretValue calls after using the key on every node, want 1", gets)
	}
	for _, op := range []string{"CreateSecret", "DeleteSecret", "DescribeSecret"} {
		if n := b.proxy.Calls(op); n != 0 {
			t.Fatalf("%d %s calls, want 0", n, op)
		}
	}
	assertConverged(t, c)
}

// TestAWSRevalidationCost: with N cached keys, one revalidation is one
// Store.List, i.e. ceil(N/100) ListSecrets pages and no GetSecretValue; a
// key deleted behind the cluster's back is evicted by it.
func TestAWSRevalidationCost(t *testing.T) {
	const (
		n     = 250
		every = 500 * time.Millisecond
	)
	b := newAWSBackend(t)
	rec := &awsCallLog{}
	// Health checks are pushed out of the window, so every ListSecrets is
	// revalidation; creates are not rate limited for the set-up.
	node := startAWSNode(t, b.open(t, rec, func(c *aws.Config) { c.CreateRate = 1000 }), awsNodeOptions{
		cache: config.Cache{Any: every, Unused: time.Hour}, healthInterval: time.Hour,
	})
	cl := node.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if err := cl.CreateKey(bg, fmt.Sprintf("reval-%03d", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(node.srv.FSM().Keys(enclave.DefaultEnclave, "")); got != n {
		t.Fatalf("%d cached keys, want %d", got, n)
	}

	// Watch three complete revalidations: each starts with a first page.
	mark := rec.len()
	b.proxy.ResetCalls()
	var runs [][]awsCall
	testutil.Eventually(t, 10*every+5*time.Second, "three complete revalidations", func() bool {
		runs = awsSplitRuns(rec.since(mark))
		return len(runs) >= 4 // the last may still be running
	})
	runs = runs[:3]
	pagesWant := (n + 1 + 99) / 100 // the keys and the seal entry, 100 per page
	var pages []int
	for i, run := range runs {
		pages = append(pages, len(run))
		for _, c := range run {
			if c.op != "ListSecrets" || c.maxResults != 100 {
				t.Fatalf("revalidation %d made a %s call (MaxResults %d)", i, c.op, c.maxResults)
			}
		}
		if len(run) > (n+99)/100+1 {
			t.Fatalf("revalidation %d of %d cached keys took %d ListSecrets calls, want <= %d", i, n, len(run), (n+99)/100+1)
		}
	}
	gets, lists := b.proxy.Calls("GetSecretValue"), b.proxy.Calls("ListSecrets")
	t.Logf("revalidation: %d cached keys (+ seal entry), ListSecrets pages per revalidation %v (expected %d); "+
		"in the window the proxy counted %d ListSecrets and %d GetSecretValue", n, pages, pagesWant, lists, gets)
	if gets != 0 {
		t.Fatalf("%d GetSecretValue calls during revalidation, want 0", gets)
	}
	if got := len(node.srv.FSM().Keys(enclave.DefaultEnclave, "")); got != n {
		t.Fatalf("revalidation evicted keys that are still in AWS: %d cached, want %d", got, n)
	}

	// A key deleted in AWS behind the cluster's back is evicted at the next
	// revalidation and then no longer served.
	b.remove(t, "reval-042")
	testutil.Eventually(t, 10*every, "the deleted key is evicted", func() bool {
		_, ok := node.srv.FSM().Key(enclave.DefaultEnclave, "reval-042")
		return !ok
	})
	if _, err := cl.GenerateKey(bg, "reval-042", nil); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("generate with a key deleted in AWS: %v, want %v", err, client.ErrKeyNotFound)
	}
}

// awsSplitRuns cuts a call log into revalidations: each begins with a
// ListSecrets call without NextToken. Calls before the first start are
// dropped (a run already in progress).
func awsSplitRuns(calls []awsCall) [][]awsCall {
	var runs [][]awsCall
	for _, c := range calls {
		if c.op == "ListSecrets" && !c.nextToken {
			runs = append(runs, nil)
		}
		if len(runs) > 0 {
			runs[len(runs)-1] = append(runs[len(runs)-1], c)
		}
	}
	return runs
}
