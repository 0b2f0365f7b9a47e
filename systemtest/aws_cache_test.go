package systemtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store/aws"
)

// TestAWSSealedCacheOutlivesUnused: with a short cache (any and unused of
// 500ms), keys loaded once keep serving from the sealed records for
// several periods with no GetSecretValue and no Raft apply (the plaintext
// copies are dropped and unsealed again), and a secret replaced in AWS
// with PutSecretValue is served with its new value after one revalidation.
func TestAWSSealedCacheOutlivesUnused(t *testing.T) {
	const (
		n     = 20
		every = 500 * time.Millisecond
	)
	b := newAWSBackend(t)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("kes-written-%02d", i) // as KES left them
		b.put(t, names[i], awsNewKeyValue(t, "kes"))
	}
	node := startAWSNode(t, b.open(t, nil, nil), awsNodeOptions{
		cache: config.Cache{Any: every, Unused: every}, healthInterval: time.Hour,
	})
	cl := node.client(t)
	assoc := []byte("bucket/object")
	cts := map[string][]byte{}
	b.proxy.ResetCalls()         // bootstrapping read the seal entry
	for _, name := range names { // the first use loads each key once
		dek, err := cl.GenerateKey(bg, name, assoc)
		if err != nil {
			t.Fatal(err)
		}
		cts[name] = dek.Ciphertext
	}
	if got := b.proxy.Calls("GetSecretValue"); got != n {
		t.Fatalf("%d GetSecretValue calls to load %d keys", got, n)
	}
	f := node.srv.FSM()
	b.proxy.ResetCalls()
	applied := f.AppliedIndex()
	svc := node.srv.Service()
	unseals := svc.CacheStats().Unseals

	// Several periods: every request is served; the plaintext copies go
	// (Unused) and come back by unsealing, never from AWS or through Raft.
	deadline := time.Now().Add(4 * every)
	for round := 0; time.Now().Before(deadline); round++ {
		for _, name := range names[:n/2] { // half the keys stay in use
			if _, err := cl.Decrypt(bg, name, cts[name], assoc); err != nil {
				t.Fatalf("round %d: decrypt with %s: %v", round, name, err)
			}
		}
	}
	testutil.Eventually(t, 4*every, "unused plaintext copies dropped", func() bool {
		return svc.CacheStats().Unsealed <= n/2
	})
	for _, name := range names { // the unused half comes back from the sealed records
		if _, err := cl.Decrypt(bg, name, cts[name], assoc); err != nil {
			t.Fatalf("decrypt with %s after its plaintext was dropped: %v", name, err)
		}
	}
	if got := svc.CacheStats().Unseals - unseals; got < uint64(n/2) {
		t.Fatalf("%d unseals: the dropped copies were not unsealed again", got)
	}
	if got := b.proxy.Calls("GetSecretValue"); got != 0 {
		t.Fatalf("%d GetSecretValue calls after the first load, want 0", got)
	}
	if got := b.proxy.Calls("ListSecrets"); got < 3 {
		t.Fatalf("%d ListSecrets calls in %v: revalidation did not run every %v", got, 4*every, every)
	}
	if got := f.AppliedIndex(); got != applied {
		t.Fatalf("Raft applies while serving loaded keys: index %d -> %d", applied, got)
	}
	for _, name := range names {
		if _, ok := f.Key(enclave.DefaultEnclave, name); !ok {
			t.Fatalf("sealed record of %s left the FSM", name)
		}
	}

	// A secret replaced behind the cluster's back is served with its new
	// value after one revalidation: a ciphertext made under the old value
	// no longer decrypts, a new one does.
	replaced := names[0]
	_, err := b.raw.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: awssdk.String(replaced), SecretString: awssdk.String(awsNewKeyValue(t, "operator")),
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 4*every, "the replaced secret is served with its new value", func() bool {
		_, err := cl.Decrypt(bg, replaced, cts[replaced], assoc)
		return err != nil
	})
	t.Logf("the replaced secret was served with its new value after %v (any = %v)", time.Since(start), every)
	if got := b.proxy.Calls("GetSecretValue"); got != 1 {
		t.Fatalf("%d GetSecretValue calls to reload one replaced secret, want 1", got)
	}
	dek, err := cl.GenerateKey(bg, replaced, assoc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Decrypt(bg, replaced, dek.Ciphertext, assoc); err != nil {
		t.Fatal(err)
	}
}

// TestAWSListingFailureAndOutageWithOfflineZero: with cache.expiry.offline
// 0, one revalidation whose ListSecrets is throttled (through every SDK
// retry) evicts nothing; when AWS goes away, the sealed keys keep serving
// until two listings have failed more than `any` after the last good one,
// then requests for them answer 502 as KES's do; when AWS is back they
// serve again within about a probe interval.
func TestAWSListingFailureAndOutageWithOfflineZero(t *testing.T) {
	const (
		every       = time.Second
		callTimeout = time.Second // a failing listing gives up within it
	)
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, func(c *aws.Config) { c.CallTimeout = callTimeout }), awsNodeOptions{
		cache: config.Cache{Any: every, Unused: time.Hour}, healthInterval: time.Hour,
	})
	cl := node.client(t)
	f := node.srv.FSM()
	keys := []string{"lf-a", "lf-b", "lf-c"}
	for _, k := range keys {
		if err := cl.CreateKey(bg, k); err != nil {
			t.Fatal(err)
		}
	}
	sealed := f.KeyCount()

	// One revalidation's listing fails: every ListSecrets attempt is
	// throttled until the node has seen a listing fail (it then marks the
	// keystore offline); the next listing succeeds.
	svc := node.srv.Service()
	b.proxy.Inject("ListSecrets", 1_000_000, awstest.Throttle())
	testutil.Eventually(t, 10*every, "a throttled listing fails", svc.Offline)
	b.proxy.Clear()
	testutil.Eventually(t, 10*every, "the next listing succeeds", func() bool { return !svc.Offline() })
	b.proxy.Clear()
	if got := f.KeyCount(); got != sealed {
		t.Fatalf("a throttled listing evicted keys: %d sealed, want %d", got, sealed)
	}
	for _, k := range keys {
		if _, err := cl.GenerateKey(bg, k, nil); err != nil {
			t.Fatalf("generate with %s after a throttled listing: %v", k, err)
		}
	}

	// AWS goes away: served until the bound, then 502.
	b.proxy.SetDown(true)
	down := time.Now()
	var lastErr error
	testutil.Eventually(t, 2*every+10*time.Second, "the sealed keys stop serving", func() bool {
		_, lastErr = cl.GenerateKey(bg, keys[0], nil)
		return lastErr != nil
	})
	served := time.Since(down)
	if code := awsErrCode(lastErr); code != 502 {
		t.Fatalf("generate after the bound: %v, want a 502", lastErr)
	}
	// The last good listing was at most `every` before the outage, and the
	// keys are dropped at the second failed listing after it (each listing
	// takes up to the call timeout to fail).
	if served < every*9/10 || served > 2*(every+callTimeout)+time.Second {
		t.Fatalf("the sealed keys served %v into the outage; want between any (%v) and 2·any after the last good listing", served, every)
	}
	b.proxy.SetDown(false)
	up := time.Now()
	testutil.Eventually(t, 5*time.Second, "serving again after AWS is back", func() bool {
		_, err := cl.GenerateKey(bg, keys[0], nil)
		return err == nil
	})
	t.Logf("offline 0, any %v: sealed keys served %v into the outage, then 502; served again %v after AWS came back",
		every, served.Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
}
