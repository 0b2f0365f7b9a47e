package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store"
)

// deadlineMargin is how far past its deadline a call may return (scheduling,
// connection teardown under -race).
const deadlineMargin = 750 * time.Millisecond

func TestBurstOfCreatesWithThrottling(t *testing.T) {
	t.Parallel()
	// 200 concurrent creates; every 4th CreateSecret AWS sees is throttled.
	// The rate is raised from the default only to keep the test short.
	s, proxy := proxied(t, func(c *Config) { c.CreateRate = 200 })
	proxy.InjectEvery("CreateSecret", 4, awstest.Throttle())
	ctx := ctxFor(t, 60*time.Second)

	const n = 200
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		names[i] = fmt.Sprintf("k%03d", i)
		wg.Go(func() { errs[i] = s.Create(ctx, names[i], []byte(names[i])) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create(%s): %v", names[i], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	injected := proxy.Injected()
	if injected < n/4 {
		t.Errorf("only %d throttles injected, want at least %d", injected, n/4)
	}
	// Each throttled call was retried once more; nothing else was called.
	if got := proxy.Calls("CreateSecret"); got != n+injected {
		t.Errorf("%d CreateSecret calls, want %d (%d creates + %d throttled)", got, n+injected, n, injected)
	}
	if got := proxy.Calls(""); got != proxy.Calls("CreateSecret") {
		t.Errorf("%d AWS calls in all, want only CreateSecret calls", got)
	}
	proxy.Clear()
	got, err := s.List(ctx, "")
	if err != nil || !slices.Equal(got, names) {
		t.Fatalf("List = %d names, %v; want the %d created", len(got), err, n)
	}
}

func TestCreateRateLimit(t *testing.T) {
	t.Parallel()
	const rate, n = 50.0, 26
	s, proxy := proxied(t, func(c *Config) { c.CreateRate = rate })
	ctx := ctxFor(t, 30*time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.Create(ctx, fmt.Sprintf("r%02d", i), []byte("v")) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Burst 1: n creates need at least (n-1)/rate.
	if want := time.Duration(float64(n-1) / rate * float64(time.Second)); elapsed < want-20*time.Millisecond {
		t.Errorf("%d creates at %v/s took %v, want at least %v", n, rate, elapsed, want)
	}
	if got := proxy.Calls("CreateSecret"); got != n {
		t.Errorf("%d CreateSecret calls, want %d", got, n)
	}
}

func TestHungAWSNeverBlocksPastDeadline(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	s, proxy := proxied(t, func(c *Config) { c.CallTimeout = timeout })
	ctx := ctxFor(t, 30*time.Second)
	if err := s.Create(ctx, "existing", []byte("v")); err != nil {
		t.Fatal(err)
	}
	proxy.Inject("", -1, awstest.Hang())

	ops := map[string]func(context.Context) error{
		"Create": func(ctx context.Context) error { return s.Create(ctx, "new", []byte("v")) },
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, "existing"); return err },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "existing") },
		"List":   func(ctx context.Context) error { _, err := s.List(ctx, ""); return err },
		"Status": func(ctx context.Context) error { _, err := s.Status(ctx); return err },
	}
	// All calls at once: each must end by its own deadline.
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Go(func() {
			// The call timeout bounds the call...
			start := time.Now()
			err := op(ctx)
			if elapsed := time.Since(start); elapsed > timeout+deadlineMargin {
				t.Errorf("%s took %v against a hung AWS, want at most %v", name, elapsed, timeout+deadlineMargin)
			}
			if !errors.Is(err, store.ErrUnreachable) {
				t.Errorf("%s against a hung AWS = %v, want ErrUnreachable", name, err)
			}
		})
		wg.Go(func() {
			// ...and so does a shorter caller deadline.
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := op(short)
			if elapsed := time.Since(start); elapsed > 300*time.Millisecond+deadlineMargin {
				t.Errorf("%s with a 300ms deadline took %v", name, elapsed)
			}
			if !errors.Is(err, store.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with a 300ms deadline = %v, want ErrUnreachable and DeadlineExceeded", name, err)
			}
		})
	}
	wg.Wait()
	if hung := proxy.Injected(); hung < 2*len(ops) {
		t.Errorf("only %d calls were held by the proxy, want at least %d", hung, 2*len(ops))
	}

	proxy.Clear()
	proxy.ReleaseHangs()
	// Once AWS answers again a call succeeds (each attempt is bounded by
	// the 1 s call timeout, which a loaded machine can exceed once).
	var got []byte
	var err error
	testutil.Eventually(t, 10*time.Second, "Get after AWS recovered", func() bool {
		got, err = s.Get(ctx, "existing")
		return err == nil
	})
	if string(got) != "v" {
		t.Fatalf("Get after AWS recovered = %q", got)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(new) = %v: the hung Create must not have created it", err)
	}
}

func TestDownAndRecovery(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, func(c *Config) { c.CallTimeout = 1500 * time.Millisecond })
	ctx := ctxFor(t, 30*time.Second)
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status before the outage: %v", err)
	}

	proxy.SetDown(true)
	start := time.Now()
	_, err := s.Status(ctx)
	if !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("Status while down = %v, want ErrUnreachable", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Status while down took %v; it makes at most %d quick attempts", elapsed, statusAttempts)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Get while down = %v, want ErrUnreachable", err)
	}

	proxy.SetDown(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Status(ctx)
		if err == nil {
			if st.Latency <= 0 {
				t.Errorf("Status latency = %v, want > 0", st.Latency)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status after recovery still fails: %v", err)
		}
	}
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create after recovery: %v", err)
	}
}

func TestStatusErrors(t *testing.T) {
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)

	proxy.Inject("ListSecrets", 1, awstest.APIError(http.StatusBadRequest,
		"UnrecognizedClientException", "The security token included in the request is invalid."))
	_, err := s.Status(ctx)
	if err == nil || errors.Is(err, store.ErrUnreachable) || errorCode(err) != "UnrecognizedClientException" {
		t.Fatalf("Status with rejected credentials = %v, want a plain error with the AWS code", err)
	}
	if got := proxy.Calls("ListSecrets"); got != 1 {
		t.Errorf("%d ListSecrets calls, want 1 (auth errors are not retried)", got)
	}

	// Latency is measured on the real call.
	proxy.SetLatency(150 * time.Millisecond)
	st, err := s.Status(ctx)
	if err != nil || st.Latency < 150*time.Millisecond {
		t.Fatalf("Status with 150ms latency = %v, %v", st.Latency, err)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []awstest.Fault{awstest.Drop(), awstest.ServerError(), awstest.Throttle(),
		awstest.APIError(http.StatusServiceUnavailable, "ServiceUnavailable", "try later")} {
		proxy.ResetCalls()
		proxy.Inject("GetSecretValue", 2, f)
		if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
			t.Fatalf("Get with 2 x %v = %q, %v", f, got, err)
		}
		if got := proxy.Calls("GetSecretValue"); got != 3 {
			t.Errorf("Get with 2 x %v: %d calls, want 3", f, got)
		}
	}
	// A non-retryable error is reported at once.
	proxy.ResetCalls()
	proxy.Inject("GetSecretValue", 1, awstest.APIError(http.StatusBadRequest, "AccessDeniedException", "no"))
	if _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, store.ErrUnreachable) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get with AccessDenied = %v, want a plain error", err)
	}
	if got := proxy.Calls("GetSecretValue"); got != 1 {
		t.Errorf("AccessDenied: %d calls, want 1", got)
	}
}

func TestGetOfSecretBeingDeleted(t *testing.T) {
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	proxy.Inject("GetSecretValue", 1, awstest.APIError(http.StatusBadRequest, codeInvalidRequest,
		"You can't perform this operation on the secret because it was marked for deletion."))
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a secret marked for deletion = %v, want ErrNotFound", err)
	}
}

func TestCreateWhileNameIsBeingDeleted(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	proxy.Inject("CreateSecret", 3, awstest.APIError(http.StatusBadRequest, codeInvalidRequest,
		"You can't create this secret because a secret with this name is already scheduled for deletion."))
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create while the name is being deleted: %v", err)
	}
	if got := proxy.Calls("CreateSecret"); got != 4 {
		t.Errorf("%d CreateSecret calls, want 4", got)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}

	// Still being deleted when the deadline passes: ErrUnreachable, nothing created.
	s2, proxy2 := proxied(t, func(c *Config) { c.CallTimeout = 500 * time.Millisecond })
	proxy2.Inject("CreateSecret", -1, awstest.APIError(http.StatusBadRequest, codeInvalidRequest,
		"You can't create this secret because a secret with this name is already scheduled for deletion."))
	if err := s2.Create(ctx, "k", []byte("v")); !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("Create while the name stays scheduled for deletion = %v, want ErrUnreachable", err)
	}
}

func TestCreateSettledByReadBack(t *testing.T) {
	t.Parallel()
	value := []byte("c2VjcmV0LWtleS1tYXRlcmlhbA==")
	cases := []struct {
		name    string
		fault   awstest.Fault
		n       int
		timeout time.Duration
		wantErr error // nil = success
		reads   int   // GetSecretValue calls made to settle
	}{
		// Created, but the answer was lost: the SDK's retry gets
		// ResourceExists, the read-back finds our value.
		{"DroppedAfterCreate", awstest.Drop().AfterForward(), 1, 0, nil, 1},
		{"ServerErrorAfterCreate", awstest.ServerError().AfterForward(), 2, 0, nil, 1},
		// Created, then no answer until the deadline: the reserve settles it.
		{"HungAfterCreate", awstest.Hang().AfterForward(), 1, 2 * time.Second, nil, 1},
		// Never created and no answer: the read-back finds nothing.
		{"HungBeforeCreate", awstest.Hang(), -1, time.Second, store.ErrUnreachable, 1},
		// Rejected outright: no read-back.
		{"Rejected", awstest.APIError(http.StatusBadRequest, "EncryptionFailure", "KMS key unusable"), -1, 0, errAny, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			proxy := awstest.NewProxy(t, awstest.Shared(t).URL)
			cfg := testConfig(t, proxy.URL, uniquePrefix(t))
			cfg.CallTimeout = tc.timeout
			s := openTest(t, cfg, logs)
			ctx := ctxFor(t, 20*time.Second)

			proxy.Inject("CreateSecret", tc.n, tc.fault)
			version, err := s.CreateVersion(ctx, "k", value)
			checkErr(t, "Create", err, tc.wantErr)
			if got := proxy.Calls("GetSecretValue"); got != tc.reads {
				t.Errorf("%d GetSecretValue calls, want %d", got, tc.reads)
			}
			proxy.Clear()
			got, gotVersion, gerr := s.GetVersion(ctx, "k")
			if tc.wantErr == nil && (gerr != nil || !bytes.Equal(got, value)) {
				t.Errorf("Get after settled Create = %q, %v", got, gerr)
			}
			// A settled create reports the version its read-back saw.
			if tc.wantErr == nil && (version == "" || version != gotVersion) {
				t.Errorf("CreateVersion = %q, GetVersion = %q; want the same non-empty version", version, gotVersion)
			}
			if tc.wantErr != nil && version != "" {
				t.Errorf("failed CreateVersion returned version %q", version)
			}
			if tc.wantErr != nil && !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("Get after failed Create = %q, %v; want ErrNotFound", got, gerr)
			}
			if bytes.Contains(logs.Bytes(), value) {
				t.Error("the secret value appears in the log")
			}
			if tc.wantErr == nil && tc.reads > 0 && !bytes.Contains(logs.Bytes(), []byte("test.keystore.aws: create confirmed")) {
				t.Errorf("no log line from keystore.aws about the confirmed create; log:\n%s", logs.Bytes())
			}
		})
	}

	t.Run("OtherValueAfterRetry", func(t *testing.T) {
		// Someone else's value is there after a retried call: ErrExists.
		s, proxy := proxied(t, nil)
		ctx := ctxFor(t, 10*time.Second)
		if err := s.Create(ctx, "k", []byte("theirs")); err != nil {
			t.Fatal(err)
		}
		proxy.Inject("CreateSecret", 1, awstest.Drop())
		if err := s.Create(ctx, "k", value); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Create = %v, want ErrExists", err)
		}
		if got := proxy.Calls("GetSecretValue"); got != 1 {
			t.Errorf("%d GetSecretValue calls, want 1", got)
		}
	})
}

func TestDeleteSettledByLookup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fault     awstest.Fault
		n         int
		timeout   time.Duration
		wantErr   error
		describes int
		gone      bool
	}{
		// Deleted, answer lost: the SDK's retry gets ResourceNotFound.
		{"DroppedAfterDelete", awstest.Drop().AfterForward(), 1, 0, nil, 1, true},
		// Deleted, then no answer until the deadline: the lookup settles it.
		{"HungAfterDelete", awstest.Hang().AfterForward(), 1, 2 * time.Second, nil, 2, true},
		{"ServerErrorsAfterDelete", awstest.ServerError().AfterForward(), 2, 0, nil, 1, true},
		// Not deleted, no answer: still there, ErrUnreachable.
		{"HungBeforeDelete", awstest.Hang(), -1, time.Second, store.ErrUnreachable, 2, false},
		// Rejected outright: a plain error, no lookup.
		{"Rejected", awstest.APIError(http.StatusBadRequest, "AccessDeniedException", "no"), -1, 0, errAny, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, proxy := proxied(t, func(c *Config) { c.CallTimeout = tc.timeout })
			ctx := ctxFor(t, 20*time.Second)
			if err := s.Create(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			proxy.Inject("DeleteSecret", tc.n, tc.fault)
			checkErr(t, "Delete", s.Delete(ctx, "k"), tc.wantErr)
			if got := proxy.Calls("DescribeSecret"); got != tc.describes {
				t.Errorf("%d DescribeSecret calls, want %d", got, tc.describes)
			}
			proxy.Clear()
			_, err := s.Get(ctx, "k")
			if gone := errors.Is(err, store.ErrNotFound); gone != tc.gone {
				t.Errorf("after Delete: Get = %v, want gone=%v", err, tc.gone)
			}
		})
	}

	t.Run("MissingNeverCallsDeleteSecret", func(t *testing.T) {
		// Real AWS answers a force-delete of a missing secret with success;
		// the lookup first makes that ErrNotFound without relying on it.
		s, proxy := proxied(t, nil)
		ctx := ctxFor(t, 10*time.Second)
		if err := s.Delete(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete(missing) = %v, want ErrNotFound", err)
		}
		if got := proxy.Calls("DeleteSecret"); got != 0 {
			t.Errorf("%d DeleteSecret calls for a missing secret, want 0", got)
		}
	})
}

// errAny stands for "some error other than ErrUnreachable/ErrNotFound/ErrExists".
var errAny = errors.New("any plain error")

func checkErr(t *testing.T, op string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s = %v, want success", op, err)
	case want == errAny:
		if err == nil || errors.Is(err, store.ErrUnreachable) || errors.Is(err, store.ErrNotFound) ||
			errors.Is(err, store.ErrExists) {
			t.Fatalf("%s = %v, want a plain error", op, err)
		}
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s = %v, want %v", op, err, want)
	}
}
