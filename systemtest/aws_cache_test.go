package systemtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/testutil"
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
