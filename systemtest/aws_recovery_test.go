package systemtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestAWSRecoveryWindow: against the emulator, a delete within the
// recovery window schedules the secret for deletion (Secrets Manager's own
// window, never a force-delete); a restore calls RestoreSecret and old
// ciphertexts decrypt again; at the end of the window the leader purges
// the secret for good.
func TestAWSRecoveryWindow(t *testing.T) {
	const window = 3 * time.Second
	b := newAWSBackend(t)
	node := startAWSNode(t, b.open(t, nil, nil), awsNodeOptions{recoveryWindow: window})
	cl := node.client(t)
	if err := cl.CreateKey(bg, "rw-aws"); err != nil {
		t.Fatal(err)
	}
	dek, err := cl.GenerateKey(bg, "rw-aws", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.proxy.Record("DeleteSecret")
	if err := cl.DeleteKey(bg, "rw-aws"); err != nil {
		t.Fatal(err)
	}
	reqs := b.proxy.Requests("DeleteSecret")
	if len(reqs) != 1 {
		t.Fatalf("%d DeleteSecret calls for a delete within the window, want 1", len(reqs))
	}
	var in struct {
		RecoveryWindowInDays       int64
		ForceDeleteWithoutRecovery bool
	}
	if err := json.Unmarshal(reqs[0], &in); err != nil || in.ForceDeleteWithoutRecovery || in.RecoveryWindowInDays != 7 {
		t.Fatalf("DeleteSecret request %s (%v): want a 7-day recovery window, no force", reqs[0], err)
	}
	out, err := b.raw.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String("rw-aws")})
	if err != nil || out.DeletedDate == nil {
		t.Fatalf("the secret is not scheduled for deletion: %+v, %v", out, err)
	}
	if _, err := cl.Decrypt(bg, "rw-aws", dek.Ciphertext, nil); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("decrypt under a deleted key: %v", err)
	}
	if err := cl.CreateKey(bg, "rw-aws"); !errors.Is(err, client.ErrKeyExists) {
		t.Fatalf("create of the pending deletion's name: %v", err)
	}

	before := b.proxy.Calls("RestoreSecret")
	if err := cl.RestoreKey(bg, "rw-aws"); err != nil {
		t.Fatal(err)
	}
	if n := b.proxy.Calls("RestoreSecret") - before; n != 1 {
		t.Fatalf("%d RestoreSecret calls for a restore, want 1", n)
	}
	if pt, err := cl.Decrypt(bg, "rw-aws", dek.Ciphertext, nil); err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Fatalf("decrypt after the restore: %v", err)
	}
	if got := b.get(t, "rw-aws"); got == "" {
		t.Fatal("the restored secret has no value")
	}

	// Deleted again and left: purged (force-deleted) when the window ends.
	if err := cl.DeleteKey(bg, "rw-aws"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, window+20*time.Second, "purge at the end of the window", func() bool {
		_, err := b.raw.DescribeSecret(bg, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String("rw-aws")})
		l, lerr := cl.DeletedKeys(bg, "")
		return err != nil && strings.Contains(err.Error(), "ResourceNotFoundException") && lerr == nil && len(l) == 0
	})
	if err := cl.CreateKey(bg, "rw-aws"); err != nil {
		t.Fatalf("create after the purge: %v", err)
	}
}
