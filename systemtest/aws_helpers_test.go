package systemtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/aws"
)

// awsTestRegion is the region the tests configure; kumo accepts any.
const awsTestRegion = "us-east-1"

// awsBackend is a kumo emulator of the test's own (so KES-style secret
// names, which have no prefix, cannot collide between tests) behind a
// fault-injecting proxy that counts calls.
type awsBackend struct {
	emu   *awstest.Emulator
	proxy *awstest.Proxy
	raw   *secretsmanager.Client // talks to the emulator directly, bypassing the proxy
}

func newAWSBackend(t *testing.T) *awsBackend {
	t.Helper()
	emu := awstest.NewEmulator(t)
	return &awsBackend{
		emu:   emu,
		proxy: awstest.NewProxy(t, emu.URL),
		raw: secretsmanager.New(secretsmanager.Options{
			Region:       awsTestRegion,
			BaseEndpoint: awssdk.String(emu.URL),
			Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		}),
	}
}

// open returns a Store that reaches the emulator through the proxy, with an
// HTTP client of its own (optionally recording the calls into rec). mod, if
// not nil, adjusts the Config first. The node that uses the Store closes
// it; it is closed at cleanup as well (Close is idempotent).
func (b *awsBackend) open(t *testing.T, rec *awsCallLog, mod func(*aws.Config)) *aws.Store {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if rec != nil {
		rec.next = tr
		rt = rec
	}
	cfg := aws.Config{
		Endpoint:   b.proxy.URL,
		Region:     awsTestRegion,
		AccessKey:  "test",
		SecretKey:  "test",
		HTTPClient: &http.Client{Transport: rt},
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := aws.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("aws.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// put creates a secret directly in the emulator, as KES (or an operator)
// would have.
func (b *awsBackend) put(t *testing.T, name, value string) {
	t.Helper()
	_, err := b.raw.CreateSecret(ctxTimeout(t, 10*time.Second), &secretsmanager.CreateSecretInput{
		Name: awssdk.String(name), SecretString: awssdk.String(value),
	})
	if err != nil {
		t.Fatalf("seed secret %q: %v", name, err)
	}
}

// get reads a secret's SecretString directly from the emulator.
func (b *awsBackend) get(t *testing.T, name string) string {
	t.Helper()
	out, err := b.raw.GetSecretValue(ctxTimeout(t, 10*time.Second), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(name)})
	if err != nil {
		t.Fatalf("read secret %q from the emulator: %v", name, err)
	}
	return awssdk.ToString(out.SecretString)
}

// remove force-deletes a secret directly in the emulator.
func (b *awsBackend) remove(t *testing.T, name string) {
	t.Helper()
	_, err := b.raw.DeleteSecret(ctxTimeout(t, 10*time.Second), &secretsmanager.DeleteSecretInput{
		SecretId: awssdk.String(name), ForceDeleteWithoutRecovery: awssdk.Bool(true),
	})
	if err != nil {
		t.Fatalf("delete secret %q in the emulator: %v", name, err)
	}
}

// names lists every live secret in the emulator, sorted.
func (b *awsBackend) names(t *testing.T) []string {
	t.Helper()
	var names []string
	pages := secretsmanager.NewListSecretsPaginator(b.raw, &secretsmanager.ListSecretsInput{},
		func(o *secretsmanager.ListSecretsPaginatorOptions) { o.StopOnDuplicateToken = true })
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctxTimeout(t, 10*time.Second))
		if err != nil {
			t.Fatalf("list secrets in the emulator: %v", err)
		}
		for _, s := range page.SecretList {
			if s.DeletedDate == nil {
				names = append(names, awssdk.ToString(s.Name))
			}
		}
	}
	slices.Sort(names)
	return names
}

// awsNewKeyValue returns a fresh key in the KES 2024+ stored form (base64
// protobuf), as KES writes it into Secrets Manager.
func awsNewKeyValue(t *testing.T, createdBy string) string {
	t.Helper()
	kv, err := crypto.NewKeyVersion(crypto.AES256, createdBy, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Zero()
	v, err := crypto.EncodeKeyVersion(kv)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// awsCallLog is an http.RoundTripper that records the Secrets Manager
// calls a Store sends, so a test can tell one revalidation (a ListSecrets
// first page and its follow-up pages) from the next.
type awsCallLog struct {
	next http.RoundTripper

	mu    sync.Mutex
	calls []awsCall
}

// awsCall is one recorded call.
type awsCall struct {
	op         string // e.g. "ListSecrets"
	maxResults int    // ListSecrets MaxResults (1 for Status, 100 for List)
	nextToken  bool   // ListSecrets asked for a follow-up page
}

func (l *awsCallLog) RoundTrip(req *http.Request) (*http.Response, error) {
	call := awsCall{op: awstest.Operation(req)}
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		var in struct {
			MaxResults int
			NextToken  string
		}
		_ = json.Unmarshal(body, &in) // not every call has these fields
		call.maxResults, call.nextToken = in.MaxResults, in.NextToken != ""
		clone := req.Clone(req.Context())
		clone.Body = io.NopCloser(bytes.NewReader(body))
		clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req = clone
	}
	l.mu.Lock()
	l.calls = append(l.calls, call)
	l.mu.Unlock()
	return l.next.RoundTrip(req)
}

// since returns the calls recorded after the first n.
func (l *awsCallLog) since(n int) []awsCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[n:])
}

func (l *awsCallLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// awsCert is a self-signed certificate written to disk.
type awsCert struct {
	certFile, keyFile, identity string
	cert                        tls.Certificate
}

// awsWriteCert creates an ECDSA P-256 self-signed certificate for 127.0.0.1
// and localhost, usable as server and client certificate, and writes it to
// dir/name.cert and dir/name.key.
func awsWriteCert(t *testing.T, dir, name string) awsCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, der, err := identity.SelfSigned(key, identity.CertOptions{
		Subject: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		Expiry: time.Hour, ServerAuth: true, ClientAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := identity.EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := identity.EncodeCertificatePEM(der)
	cf := awsCert{
		certFile: filepath.Join(dir, name+".cert"),
		keyFile:  filepath.Join(dir, name+".key"),
		identity: identity.Of(cert),
	}
	if err := os.WriteFile(cf.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf.keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if cf.cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return cf
}

// awsServeNode starts a node for cfg on loopback listeners (cfg.Address and
// the Raft address are ignored) and closes it at cleanup. It returns the
// node and its API URL.
func awsServeNode(t *testing.T, cfg *config.Config, opts server.Options) (*server.Server, string) {
	t.Helper()
	apiLn := testutil.Listen(t)
	raftLn := testutil.Listen(t)
	url := "https://" + apiLn.Addr().String()
	cfg.Cluster.APIAdvertise = url
	var done atomic.Bool
	opts.APIListener, opts.RaftListener = apiLn, raftLn
	opts.AuditOut = io.Discard
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.Cluster.NodeID, Level: hclog.Warn, Output: testLog{t, &done}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Logf("close node: %v", err)
		}
		done.Store(true)
	})
	return srv, url
}

// awsNode is a bootstrapped one-node cluster whose keystore is an AWS Store.
type awsNode struct {
	srv   *server.Server
	url   string
	admin identity.APIKey
}

// awsNodeOptions are the knobs the AWS tests turn.
type awsNodeOptions struct {
	cache          config.Cache
	healthInterval time.Duration
	recoveryWindow time.Duration // protection.recovery_window
}

// startAWSNode bootstraps a node with an admin API key on st.
func startAWSNode(t *testing.T, st store.Store, o awsNodeOptions) *awsNode {
	t.Helper()
	dir := t.TempDir()
	admin, _ := identityKey(t)
	nc := awsWriteCert(t, dir, "node")
	cfg := &config.Config{
		Address: "127.0.0.1:0",
		Admin:   admin.Identity(),
		TLS:     config.TLS{Cert: nc.certFile, Key: nc.keyFile},
		Cache:   o.cache,
		Cluster: config.Cluster{NodeID: "aws-node", DataDir: filepath.Join(dir, "data"), Bootstrap: true},

		RecoveryWindow: o.recoveryWindow,
	}
	srv, url := awsServeNode(t, cfg, server.Options{Store: st, HealthInterval: o.healthInterval})
	return &awsNode{srv: srv, url: url, admin: admin}
}

// client returns an admin client of the node.
func (n *awsNode) client(t *testing.T) *client.Client {
	t.Helper()
	cl, err := client.New([]string{n.url}, client.WithAPIKey(n.admin), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// awsErrCode returns the HTTP status of a KES error, or 0 for nil and other
// errors.
func awsErrCode(err error) int {
	var ke kes.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return 0
}

// awsTimed runs fn and returns how long it took.
func awsTimed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}
