package aws

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/internal/awstest"
	"github.com/keyraft/keyraft/store"
)

// The recovery-window tests run against kumo through awstest: kumo keeps a
// secret deleted with a recovery window (DeletedDate set, GetSecretValue
// refused, left out of ListSecrets) and force-deletes; RestoreSecret, which
// kumo lacks, is emulated by the harness in front of it (awstest.Emulator).

// deleteCall is a DeleteSecret request as the proxy recorded it.
type deleteCall struct {
	SecretID                   string `json:"SecretId"`
	RecoveryWindowInDays       *int64 `json:"RecoveryWindowInDays"`
	ForceDeleteWithoutRecovery *bool  `json:"ForceDeleteWithoutRecovery"`
}

// deleteCalls decodes the DeleteSecret requests proxy recorded.
func deleteCalls(t *testing.T, proxy *awstest.Proxy) []deleteCall {
	t.Helper()
	var calls []deleteCall
	for _, b := range proxy.Requests("DeleteSecret") {
		var c deleteCall
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("recorded DeleteSecret body %q: %v", b, err)
		}
		calls = append(calls, c)
	}
	return calls
}

// wantScheduled checks that exactly one DeleteSecret was sent since the
// last ResetCalls, scheduling id with a recovery window of days.
func wantScheduled(t *testing.T, proxy *awstest.Proxy, id string, days int64) {
	t.Helper()
	calls := deleteCalls(t, proxy)
	if len(calls) != 1 {
		t.Fatalf("%d DeleteSecret calls recorded, want 1", len(calls))
	}
	c := calls[0]
	if c.SecretID != id || c.RecoveryWindowInDays == nil || *c.RecoveryWindowInDays != days || c.ForceDeleteWithoutRecovery != nil {
		t.Fatalf("DeleteSecret sent %+v (window %v, force %v); want %q with RecoveryWindowInDays %d and no force",
			c, awssdk.ToInt64(c.RecoveryWindowInDays), awssdk.ToBool(c.ForceDeleteWithoutRecovery), id, days)
	}
}

// stateOf looks the secret for name up directly in the emulator.
func stateOf(t *testing.T, s *Store, name string) secretState {
	t.Helper()
	st, err := s.state(ctxFor(t, 10*time.Second), s.prefix+name)
	if err != nil {
		t.Fatalf("DescribeSecret(%q): %v", name, err)
	}
	return st
}

func TestRecoveryDays(t *testing.T) {
	const day = 24 * time.Hour
	for window, want := range map[time.Duration]int64{
		-day:            7,
		0:               7,
		time.Nanosecond: 7,
		time.Minute:     7,
		7 * day:         7,
		7*day + 1:       8,
		8 * day:         8,
		29*day + 1:      30,
		30 * day:        30,
		30*day + 1:      30,
		365 * day:       30,
		1<<63 - 1:       30,
	} {
		if got := recoveryDays(window); got != want {
			t.Errorf("recoveryDays(%v) = %d, want %d", window, got, want)
		}
	}
}

func TestScheduleDelete(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	raw := rawClient(t)
	ctx := ctxFor(t, 20*time.Second)
	for _, n := range []string{"k", "other"} {
		if err := s.Create(ctx, n, []byte("value-of-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Record("DeleteSecret")
	proxy.ResetCalls()
	if err := s.ScheduleDelete(ctx, "k", time.Minute); err != nil {
		t.Fatalf("ScheduleDelete: %v", err)
	}
	if d, del := proxy.Calls("DescribeSecret"), proxy.Calls("DeleteSecret"); d != 1 || del != 1 || proxy.Calls("") != 2 {
		t.Errorf("ScheduleDelete made %d DescribeSecret and %d DeleteSecret calls of %d; want 1 and 1 of 2", d, del, proxy.Calls(""))
	}
	wantScheduled(t, proxy, s.prefix+"k", 7) // a minute rounds up to AWS's minimum

	// Unreadable through the Store...
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a scheduled secret = %v, want ErrNotFound", err)
	}
	if _, _, err := s.GetVersion(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVersion of a scheduled secret = %v, want ErrNotFound", err)
	}
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"other"}) {
		t.Errorf("List = %q, %v; want only other", names, err)
	}
	// ... but not force-deleted: Secrets Manager keeps it, scheduled.
	desc, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(s.prefix + "k")})
	if err != nil || desc.DeletedDate == nil {
		t.Fatalf("DescribeSecret of the scheduled secret = %+v, %v; want it with a DeletedDate", desc, err)
	}
	_, err = raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(s.prefix + "k")})
	if !isDeleting(err) {
		t.Fatalf("GetSecretValue of the scheduled secret = %v, want the scheduled-for-deletion error", err)
	}
	if got, err := s.Get(ctx, "other"); err != nil || string(got) != "value-of-other" {
		t.Errorf("Get(other) = %q, %v", got, err)
	}

	// Already scheduled: ErrNotFound, without another DeleteSecret.
	proxy.ResetCalls()
	if err := s.ScheduleDelete(ctx, "k", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ScheduleDelete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete of a scheduled secret = %v, want ErrNotFound", err)
	}
	if n := proxy.Calls("DeleteSecret"); n != 0 {
		t.Errorf("%d DeleteSecret calls for a secret already scheduled, want 0", n)
	}
	// The name stays taken while the secret is recoverable.
	if err := s.Create(ctx, "k", []byte("new")); err == nil {
		t.Error("Create of a name scheduled for deletion succeeded")
	}
}

func TestScheduleDeleteWindows(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 20*time.Second)
	proxy.Record("DeleteSecret")
	for i, tc := range []struct {
		window time.Duration
		days   int64
	}{
		{time.Minute, 7},
		{30 * 24 * time.Hour, 30},
		{8*24*time.Hour + time.Second, 9},
		{400 * 24 * time.Hour, 30},
	} {
		name := string(rune('a' + i))
		if err := s.Create(ctx, name, []byte("v")); err != nil {
			t.Fatal(err)
		}
		proxy.ResetCalls()
		if err := s.ScheduleDelete(ctx, name, tc.window); err != nil {
			t.Fatalf("ScheduleDelete(%v): %v", tc.window, err)
		}
		wantScheduled(t, proxy, s.prefix+name, tc.days)
		if st := stateOf(t, s, name); st != stateScheduled {
			t.Errorf("window %v: secret state %v, want scheduled", tc.window, st)
		}
	}
}

func TestRestoreDeleted(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, func(c *Config) { c.KMSKey = "alias/keyraft-test" })
	raw := rawClient(t)
	ctx := ctxFor(t, 20*time.Second)
	values := map[string][]byte{
		"text": []byte("CiQKIGZvbw==\n"),      // stored as SecretString
		"bin":  {0x00, 0xff, 'a', 0x80, 0x01}, // stored as SecretBinary
	}
	for name, v := range values {
		if err := s.Create(ctx, name, v); err != nil {
			t.Fatal(err)
		}
		if err := s.ScheduleDelete(ctx, name, 7*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%s) of a scheduled secret = %v, want ErrNotFound", name, err)
		}
	}
	for name, want := range values {
		proxy.ResetCalls()
		if err := s.RestoreDeleted(ctx, name); err != nil {
			t.Fatalf("RestoreDeleted(%s): %v", name, err)
		}
		if d, r := proxy.Calls("DescribeSecret"), proxy.Calls("RestoreSecret"); d != 1 || r != 1 {
			t.Errorf("RestoreDeleted(%s) made %d DescribeSecret and %d RestoreSecret calls, want 1 and 1", name, d, r)
		}
		if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get(%s) after RestoreDeleted = %x, %v; want %x", name, got, err, want)
		}
		desc, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(s.prefix + name)})
		if err != nil || desc.DeletedDate != nil || awssdk.ToString(desc.KmsKeyId) != "alias/keyraft-test" {
			t.Errorf("DescribeSecret(%s) after RestoreDeleted = %+v, %v; want no DeletedDate and the KMS key", name, desc, err)
		}
	}
	if names, err := s.List(ctx, ""); err != nil || !slices.Equal(names, []string{"bin", "text"}) {
		t.Errorf("List after RestoreDeleted = %q, %v", names, err)
	}

	// Not scheduled: success, without a RestoreSecret call.
	proxy.ResetCalls()
	if err := s.RestoreDeleted(ctx, "text"); err != nil {
		t.Errorf("RestoreDeleted of a live secret = %v, want success", err)
	}
	if n := proxy.Calls("RestoreSecret"); n != 0 {
		t.Errorf("%d RestoreSecret calls for a live secret, want 0", n)
	}
	// Scheduled again after a restore: the restored secret is a normal one.
	if err := s.ScheduleDelete(ctx, "text", 0); err != nil {
		t.Fatalf("ScheduleDelete after a restore: %v", err)
	}
	if err := s.RestoreDeleted(ctx, "text"); err != nil {
		t.Fatalf("second RestoreDeleted: %v", err)
	}
	if got, err := s.Get(ctx, "text"); err != nil || !bytes.Equal(got, values["text"]) {
		t.Errorf("Get after the second restore = %q, %v", got, err)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	raw := rawClient(t)
	ctx := ctxFor(t, 20*time.Second)
	proxy.Record("DeleteSecret")
	gone := func(name string) {
		t.Helper()
		_, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(s.prefix + name)})
		if errorCode(err) != codeResourceNotFound {
			t.Fatalf("DescribeSecret(%s) after Purge = %v, want ResourceNotFound", name, err)
		}
	}

	// A scheduled secret: destroyed at once, the name is free again.
	if err := s.Create(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleDelete(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	proxy.ResetCalls()
	if err := s.Purge(ctx, "k"); err != nil {
		t.Fatalf("Purge of a scheduled secret: %v", err)
	}
	calls := deleteCalls(t, proxy)
	if len(calls) != 1 || !awssdk.ToBool(calls[0].ForceDeleteWithoutRecovery) || calls[0].RecoveryWindowInDays != nil {
		t.Fatalf("Purge sent %+v, want one DeleteSecret with ForceDeleteWithoutRecovery and no window", calls)
	}
	gone("k")
	if err := s.Create(ctx, "k", []byte("new")); err != nil { // (Create rides out a name still being deleted)
		t.Fatalf("Create after Purge: %v", err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "new" {
		t.Fatalf("Get after Purge and Create = %q, %v", got, err)
	}

	// A live secret: destroyed too.
	if err := s.Purge(ctx, "k"); err != nil {
		t.Fatalf("Purge of a live secret: %v", err)
	}
	gone("k")
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Purge = %v, want ErrNotFound", err)
	}
	// Gone for good: nothing to restore or purge.
	if err := s.RestoreDeleted(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RestoreDeleted after Purge = %v, want ErrNotFound", err)
	}
	if err := s.Purge(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Purge = %v, want ErrNotFound", err)
	}
}

func TestRecoverableErrors(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	down, downProxy := proxied(t, func(c *Config) { c.CallTimeout = 300 * time.Millisecond })
	downProxy.SetDown(true)
	ctx := ctxFor(t, 10*time.Second)
	ops := map[string]func(s *Store, name string) error{
		"ScheduleDelete": func(s *Store, n string) error { return s.ScheduleDelete(ctx, n, time.Hour) },
		"RestoreDeleted": func(s *Store, n string) error { return s.RestoreDeleted(ctx, n) },
		"Purge":          func(s *Store, n string) error { return s.Purge(ctx, n) },
	}
	for op, do := range ops {
		proxy.ResetCalls()
		if err := do(s, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(missing) = %v, want ErrNotFound", op, err)
		}
		if n, d := proxy.Calls(""), proxy.Calls("DescribeSecret"); n != 1 || d != 1 {
			t.Errorf("%s(missing) made %d calls, want 1 DescribeSecret", op, n)
		}
		proxy.ResetCalls()
		if err := do(s, "a b"); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("%s(invalid name) = %v, want ErrInvalidName", op, err)
		}
		if n := proxy.Calls(""); n != 0 {
			t.Errorf("%s(invalid name) made %d calls, want 0", op, n)
		}
		if err := do(down, "k"); !errors.Is(err, store.ErrUnreachable) {
			t.Errorf("%s with AWS down = %v, want ErrUnreachable", op, err)
		}
	}
}

// TestRecoverableSettled: a call whose answer is lost or refused is settled
// by looking the secret up again, as for Delete.
func TestRecoverableSettled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		op        string // "schedule", "restore" or "purge" (of a scheduled secret)
		fault     awstest.Fault
		n         int
		timeout   time.Duration
		wantErr   error
		describes int
		after     secretState
	}{
		// Scheduled, answer lost: the SDK's retry is refused as already
		// scheduled, which on a retry means success.
		{"ScheduleDropped", "schedule", awstest.Drop().AfterForward(), 1, 0, nil, 1, stateScheduled},
		{"ScheduleHungAfter", "schedule", awstest.Hang().AfterForward(), 1, 2 * time.Second, nil, 2, stateScheduled},
		{"ScheduleHungBefore", "schedule", awstest.Hang(), -1, time.Second, store.ErrUnreachable, 2, stateLive},
		{"ScheduleRejected", "schedule", awstest.APIError(http.StatusBadRequest, "AccessDeniedException", "no"), -1, 0, errAny, 1, stateLive},
		// Scheduled by someone else between the lookup and the call.
		{"ScheduledMeanwhile", "schedule", awstest.APIError(http.StatusBadRequest, codeInvalidRequest,
			"You can't perform this operation on the secret because it was marked for deletion."), 1, 0, store.ErrNotFound, 1, stateLive},
		// Restored, answer lost: the retry finds it restored.
		{"RestoreDropped", "restore", awstest.Drop().AfterForward(), 1, 0, nil, 1, stateLive},
		{"RestoreHungAfter", "restore", awstest.Hang().AfterForward(), 1, 2 * time.Second, nil, 2, stateLive},
		{"RestoreHungBefore", "restore", awstest.Hang(), -1, time.Second, store.ErrUnreachable, 2, stateScheduled},
		// Purged, answer lost: the retry gets ResourceNotFound.
		{"PurgeDropped", "purge", awstest.Drop().AfterForward(), 1, 0, nil, 1, stateAbsent},
		{"PurgeHungAfter", "purge", awstest.Hang().AfterForward(), 1, 2 * time.Second, nil, 2, stateAbsent},
		// Not purged: still scheduled, which is not taken for success.
		{"PurgeHungBefore", "purge", awstest.Hang(), -1, time.Second, store.ErrUnreachable, 2, stateScheduled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, proxy := proxied(t, func(c *Config) { c.CallTimeout = tc.timeout })
			ctx := ctxFor(t, 20*time.Second)
			if err := s.Create(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			op, do := "DeleteSecret", func() error { return s.ScheduleDelete(ctx, "k", time.Hour) }
			if tc.op != "schedule" {
				if err := s.ScheduleDelete(ctx, "k", time.Hour); err != nil {
					t.Fatal(err)
				}
				if tc.op == "restore" {
					op, do = "RestoreSecret", func() error { return s.RestoreDeleted(ctx, "k") }
				} else {
					do = func() error { return s.Purge(ctx, "k") }
				}
			}
			proxy.ResetCalls()
			proxy.Inject(op, tc.n, tc.fault)
			checkErr(t, tc.name, do(), tc.wantErr)
			if got := proxy.Calls("DescribeSecret"); got != tc.describes {
				t.Errorf("%d DescribeSecret calls, want %d", got, tc.describes)
			}
			proxy.Clear()
			if st := stateOf(t, s, "k"); st != tc.after {
				t.Errorf("secret state after the call = %v, want %v", st, tc.after)
			}
			if tc.after == stateLive {
				if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
					t.Errorf("Get = %q, %v; want the value", got, err)
				}
			}
		})
	}
}
