package aws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/internal/awstest"
)

// One kumo emulator serves every test of this package; tests isolate
// themselves with a unique Prefix.
func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// testRegion is the region tests configure; kumo accepts any.
const testRegion = "us-east-1"

// uniquePrefix returns a fresh secret-name prefix for one test.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "kt-" + hex.EncodeToString(b[:]) + "/"
}

// logBuffer collects log output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// testConfig is a Config for endpoint with static test credentials and an
// HTTP client of its own.
func testConfig(t testing.TB, endpoint, prefix string) Config {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	t.Cleanup(tr.CloseIdleConnections)
	return Config{
		Endpoint:   endpoint,
		Region:     testRegion,
		Prefix:     prefix,
		AccessKey:  "test",
		SecretKey:  "test",
		HTTPClient: &http.Client{Transport: tr},
	}
}

// openTest opens a Store for cfg, logging at trace level into logs (may be
// nil), and closes it when the test ends.
func openTest(t testing.TB, cfg Config, logs *logBuffer) *Store {
	t.Helper()
	var logger hclog.Logger = hclog.NewNullLogger()
	if logs != nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Trace, Output: logs})
	}
	s, err := Open(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// proxied opens a Store that reaches the shared emulator through a fresh
// fault-injecting proxy. mod, if not nil, adjusts the Config first.
func proxied(t testing.TB, mod func(*Config)) (*Store, *awstest.Proxy) {
	t.Helper()
	proxy := awstest.NewProxy(t, awstest.Shared(t).URL)
	cfg := testConfig(t, proxy.URL, uniquePrefix(t))
	if mod != nil {
		mod(&cfg)
	}
	return openTest(t, cfg, nil), proxy
}

// rawClient is an SDK client talking to the shared emulator directly, for
// setting up and inspecting secrets behind the Store's back.
func rawClient(t testing.TB) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.New(secretsmanager.Options{
		Region:       testRegion,
		BaseEndpoint: awssdk.String(awstest.Shared(t).URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// ctxFor returns a context that ends after d and is cancelled with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
