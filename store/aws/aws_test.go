package aws

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	emu := awstest.Shared(t)
	for _, tc := range []struct {
		name, prefix string
		rate         float64
	}{
		{"KESLayout", "", 0}, // secret name = key name, as KES writes it; default create rate
		{"Prefixed", uniquePrefix(t), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.RunWith(t, func(t *testing.T) store.Store {
				cfg := testConfig(t, emu.URL, tc.prefix)
				cfg.CreateRate = tc.rate
				s, err := Open(context.Background(), cfg, nil)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s // the suite closes it
			}, storetest.Options{MaxValueSize: maxValueLen})
		})
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"secretsmanager.us-east-2.amazonaws.com", "https://secretsmanager.us-east-2.amazonaws.com"},
		{"  secretsmanager.us-east-2.amazonaws.com/ ", "https://secretsmanager.us-east-2.amazonaws.com"},
		{"https://secretsmanager.eu-west-1.amazonaws.com", "https://secretsmanager.eu-west-1.amazonaws.com"},
		{"http://127.0.0.1:4566", "http://127.0.0.1:4566"},
		{"127.0.0.1:4566", "https://127.0.0.1:4566"},
		{"localhost:4566/", "https://localhost:4566"},
	} {
		got, err := normalizeEndpoint(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("normalizeEndpoint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"ftp://example.com", "https://", "http://[::1", "://x"} {
		if got, err := normalizeEndpoint(bad); err == nil {
			t.Errorf("normalizeEndpoint(%q) = %q, want an error", bad, got)
		}
	}
}

func TestEndpointWithoutScheme(t *testing.T) {
	// A scheme-less endpoint becomes https://: talking to the plain-HTTP
	// emulator that way fails the TLS handshake, which proves the scheme.
	emu := awstest.Shared(t)
	cfg := testConfig(t, strings.TrimPrefix(emu.URL, "http://"), uniquePrefix(t))
	cfg.CallTimeout = 2 * time.Second
	s := openTest(t, cfg, nil)
	_, err := s.Status(ctxFor(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "https://127.0.0.1") {
		t.Fatalf("Status via scheme-less endpoint = %v, want an https:// request error", err)
	}
	// The same endpoint with its scheme works.
	s = openTest(t, testConfig(t, emu.URL, uniquePrefix(t)), nil)
	if _, err := s.Status(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Status: %v", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	// No region anywhere: hide the environment's and shared config's.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")

	base := Config{Endpoint: "http://127.0.0.1:1", Region: testRegion, AccessKey: "a", SecretKey: "b"}
	for name, mod := range map[string]func(*Config){
		"no region":        func(c *Config) { c.Region = "" },
		"bad scheme":       func(c *Config) { c.Endpoint = "ftp://example.com" },
		"negative timeout": func(c *Config) { c.CallTimeout = -time.Second },
		"negative rate":    func(c *Config) { c.CreateRate = -1 },
		"bad prefix":       func(c *Config) { c.Prefix = "a b" },
		"huge prefix":      func(c *Config) { c.Prefix = strings.Repeat("p", maxNameLen) },
	} {
		cfg := base
		mod(&cfg)
		if s, err := Open(context.Background(), cfg, nil); err == nil {
			_ = s.Close()
			t.Errorf("%s: Open succeeded, want an error", name)
		}
	}
	s, err := Open(context.Background(), base, nil)
	if err != nil {
		t.Fatalf("Open(valid config): %v", err)
	}
	if s.callTimeout != DefaultCallTimeout || float64(s.creates.Limit()) != DefaultCreateRate {
		t.Errorf("defaults: timeout %v rate %v", s.callTimeout, s.creates.Limit())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	s := openTest(t, Config{Endpoint: "http://127.0.0.1:1", Region: testRegion, AccessKey: "a", SecretKey: "b",
		Prefix: "pfx/"}, nil)
	ctx := ctxFor(t, 5*time.Second)
	for _, name := range []string{"", "a b", "a:b", "ключ", "a*", strings.Repeat("n", maxNameLen-3)} {
		if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	// Every character Secrets Manager allows is accepted, up to 512 with the prefix.
	for _, name := range []string{"a/b_c+d=e.f@g-h", strings.Repeat("n", maxNameLen-4)} {
		if _, err := s.secretID(name); err != nil {
			t.Errorf("secretID(%q): %v", name, err)
		}
	}
}

func TestValueLimits(t *testing.T) {
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	if err := s.Create(ctx, "empty", nil); err == nil {
		t.Error("Create with an empty value succeeded")
	}
	if err := s.Create(ctx, "big", make([]byte, maxValueLen+1)); err == nil {
		t.Error("Create with a value over 64 KiB succeeded")
	}
	if n := proxy.Calls(""); n != 0 {
		t.Errorf("rejected values made %d AWS calls, want 0", n)
	}
}

func TestValueEncoding(t *testing.T) {
	s, _ := proxied(t, func(c *Config) { c.KMSKey = "alias/keyraft-test" })
	raw := rawClient(t)
	ctx := ctxFor(t, 10*time.Second)

	text := []byte("CiQKIGZvbw==\n") // base64 text, as the enclave package writes
	bin := []byte{0x00, 0xff, 'a', 0x80}
	if err := s.Create(ctx, "text", text); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "bin", bin); err != nil {
		t.Fatal(err)
	}
	out, err := raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(s.prefix + "text")})
	if err != nil {
		t.Fatal(err)
	}
	if out.SecretString == nil || *out.SecretString != string(text) || out.SecretBinary != nil {
		t.Errorf("text value stored as SecretString=%v SecretBinary=%x, want SecretString only", out.SecretString, out.SecretBinary)
	}
	out, err = raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(s.prefix + "bin")})
	if err != nil {
		t.Fatal(err)
	}
	if out.SecretString != nil || !bytes.Equal(out.SecretBinary, bin) {
		t.Errorf("binary value stored as SecretString=%v SecretBinary=%x, want SecretBinary only", out.SecretString, out.SecretBinary)
	}
	desc, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(s.prefix + "text")})
	if err != nil {
		t.Fatal(err)
	}
	if awssdk.ToString(desc.KmsKeyId) != "alias/keyraft-test" {
		t.Errorf("KmsKeyId = %q, want the configured key", awssdk.ToString(desc.KmsKeyId))
	}
}

func TestReadsSecretsWrittenByOthers(t *testing.T) {
	s, _ := proxied(t, nil)
	raw := rawClient(t)
	ctx := ctxFor(t, 10*time.Second)

	bin := []byte{1, 2, 3, 0, 0xfe}
	if _, err := raw.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: awssdk.String(s.prefix + "binary"), SecretBinary: bin,
	}); err != nil {
		t.Fatal(err)
	}
	kesJSON := `{"bytes":"AAAA","algorithm":"AES256","created_at":"2021-01-01T00:00:00Z"}`
	if _, err := raw.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: awssdk.String(s.prefix + "string"), SecretString: awssdk.String(kesJSON),
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "binary"); err != nil || !bytes.Equal(got, bin) {
		t.Errorf("Get(binary) = %x, %v; want %x", got, err, bin)
	}
	if got, err := s.Get(ctx, "string"); err != nil || string(got) != kesJSON {
		t.Errorf("Get(string) = %q, %v; want %q", got, err, kesJSON)
	}
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"binary", "string"}) {
		t.Errorf("List = %q, %v", names, err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	emu := awstest.Shared(t)
	base := uniquePrefix(t)
	a := openTest(t, testConfig(t, emu.URL, base+"a/"), nil)
	b := openTest(t, testConfig(t, emu.URL, base+"b/"), nil)
	// A prefix that is a string prefix of a's: must not see a's names as its own.
	ab := openTest(t, testConfig(t, emu.URL, base+"a"), nil)
	all := openTest(t, testConfig(t, emu.URL, ""), nil)
	ctx := ctxFor(t, 10*time.Second)

	for _, c := range []struct {
		s    *Store
		name string
		val  string
	}{{a, "k", "from-a"}, {b, "k", "from-b"}, {a, "k2", "a2"}, {ab, "x", "ab"}} {
		if err := c.s.Create(ctx, c.name, []byte(c.val)); err != nil {
			t.Fatalf("Create(%s%s): %v", c.s.prefix, c.name, err)
		}
	}
	if got, err := a.Get(ctx, "k"); err != nil || string(got) != "from-a" {
		t.Errorf("a.Get(k) = %q, %v", got, err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "from-b" {
		t.Errorf("b.Get(k) = %q, %v", got, err)
	}
	if _, err := b.Get(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b.Get(k2) = %v, want ErrNotFound", err)
	}
	wantList := func(s *Store, prefix string, want ...string) {
		t.Helper()
		got, err := s.List(ctx, prefix)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List(%q) under %q = %q, %v; want %q", prefix, s.prefix, got, err, want)
		}
	}
	wantList(a, "", "k", "k2")
	wantList(a, "k2", "k2")
	wantList(b, "", "k")
	wantList(ab, "", "/k", "/k2", "x")
	wantList(all, base, base+"a/k", base+"a/k2", base+"ax", base+"b/k")

	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "from-b" {
		t.Errorf("after a.Delete(k): b.Get(k) = %q, %v", got, err)
	}
	if err := a.Delete(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second a.Delete(k) = %v, want ErrNotFound", err)
	}
}

func TestCallCounts(t *testing.T) {
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	steps := []struct {
		name string
		do   func() error
		want map[string]int
	}{
		{"Create", func() error { return s.Create(ctx, "k", []byte("v")) }, map[string]int{"CreateSecret": 1}},
		{"Get", func() error { _, err := s.Get(ctx, "k"); return err }, map[string]int{"GetSecretValue": 1}},
		{"Status", func() error { _, err := s.Status(ctx); return err }, map[string]int{"ListSecrets": 1}},
		{"Delete", func() error { return s.Delete(ctx, "k") }, map[string]int{"DescribeSecret": 1, "DeleteSecret": 1}},
		{"DeleteMissing", func() error {
			if err := s.Delete(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
				return errors.Join(errors.New("want ErrNotFound"), err)
			}
			return nil
		}, map[string]int{"DescribeSecret": 1}},
		{"CreateExisting", func() error {
			_ = s.Create(ctx, "e", []byte("v"))
			proxy.ResetCalls()
			if err := s.Create(ctx, "e", []byte("other")); !errors.Is(err, store.ErrExists) {
				return errors.Join(errors.New("want ErrExists"), err)
			}
			return nil
		}, map[string]int{"CreateSecret": 1}}, // rejected on the only attempt: no read-back
	}
	for _, st := range steps {
		proxy.ResetCalls()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		total := 0
		for op, n := range st.want {
			total += n
			if got := proxy.Calls(op); got != n {
				t.Errorf("%s: %d %s calls, want %d", st.name, got, op, n)
			}
		}
		if got := proxy.Calls(""); got != total {
			t.Errorf("%s: %d AWS calls in all, want %d", st.name, got, total)
		}
	}
}

func TestJitter(t *testing.T) {
	for attempt := range 40 {
		for range 50 {
			d := jitter(baseBackoff, attempt)
			limit := min(maxBackoff, baseBackoff<<max(0, min(attempt-1, 16)))
			if d <= 0 || d > limit {
				t.Fatalf("jitter(%v, %d) = %v, want in (0, %v]", baseBackoff, attempt, d, limit)
			}
		}
	}
}

func TestIsText(t *testing.T) {
	for v, want := range map[string]bool{
		"abc+/=":           true,
		"{\"a\":1}\r\n\t ": true,
		"\x00":             false,
		"\x7f":             false,
		"é":                false,
		"\xff":             false,
	} {
		if got := isText([]byte(v)); got != want {
			t.Errorf("isText(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestDefaultHTTPClientAndClose(t *testing.T) {
	// Without Config.HTTPClient the SDK's own client is used (AWS_CA_BUNDLE
	// and proxy settings apply) and Close ends its connections.
	cfg := testConfig(t, awstest.Shared(t).URL, uniquePrefix(t))
	cfg.HTTPClient = nil
	s, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := ctxFor(t, 10*time.Second)
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatal(err)
	}
	s.conns.mu.Lock()
	dials := s.conns.dials
	s.conns.mu.Unlock()
	if dials == 0 { // (the emulator may already have closed them again)
		t.Fatal("no connection was made through the tracking dialer")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.conns.mu.Lock()
	open := len(s.conns.conns)
	s.conns.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d connections still tracked after Close", open)
	}
}
