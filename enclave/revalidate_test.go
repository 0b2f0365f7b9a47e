package enclave

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/testutil"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/mem"
)

// TestRevalidateReloadsReplacedKey: a key whose keystore value was
// replaced behind the cluster's back is reloaded by the next revalidation
// (one List, one Get for that key alone) and then served with its new
// value; an unchanged key costs nothing but the listing.
func TestRevalidateReloadsReplacedKey(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	for _, n := range []string{"a", "b", "donor"} {
		if err := s.CreateKey(ctx, DefaultEnclave, n, admin); err != nil {
			t.Fatal(err)
		}
	}
	before := mustKey(t, f, "a")
	if before.Version == "" {
		t.Fatal("the created key's keystore version was not recorded")
	}
	unchanged := mustKey(t, f, "b")
	donor, err := st.Get(ctx, "donor")
	if err != nil {
		t.Fatal(err)
	}
	st.Replace("a", donor)
	st.ResetCalls()
	s.revalidate(ctx)
	if c := st.Calls(); c.List != 1 || c.Get != 1 || c.Total() != 2 {
		t.Fatalf("revalidation calls = %+v, want one List and one Get", c)
	}
	after := mustKey(t, f, "a")
	if after.Index == before.Index || after.Version == before.Version {
		t.Fatalf("record of the replaced key not reloaded: %+v", after)
	}
	if r := mustKey(t, f, "b"); r.Index != unchanged.Index {
		t.Fatal("an unchanged key was rewritten")
	}
	// Served with the new value: what "a" encrypts, "donor" decrypts.
	_, ct, err := s.GenerateKey(ctx, DefaultEnclave, "a", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(ctx, DefaultEnclave, "donor", ct, []byte("ctx")); err != nil {
		t.Fatalf("the reloaded key does not hold the keystore's new value: %v", err)
	}
	st.ResetCalls()
	s.revalidate(ctx)
	if c := st.Calls(); c.List != 1 || c.Total() != 1 {
		t.Fatalf("second revalidation calls = %+v, want one List", c)
	}
}

// TestReloadDoesNotResurrectDeletedKey: a reload decided on a listing
// must not bring back a key deleted before its apply.
func TestReloadDoesNotResurrectDeletedKey(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	for _, n := range []string{"a", "donor"} {
		if err := s.CreateKey(ctx, DefaultEnclave, n, admin); err != nil {
			t.Fatal(err)
		}
	}
	rec := mustKey(t, f, "a")
	st.Replace("a", mustGet(t, st, "a")) // a new version of the same value
	if err := s.DeleteKey(ctx, DefaultEnclave, "a", admin); err != nil {
		t.Fatal(err)
	}
	st.Replace("a", mustGet(t, st, "donor")) // what a racing reload reads
	if err := s.reload(ctx, DefaultEnclave, rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Key(DefaultEnclave, "a"); ok {
		t.Fatal("a reload brought back a deleted key")
	}
}

func mustGet(t *testing.T, st store.Store, name string) []byte {
	t.Helper()
	v, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBreakerProbesOnRequest: while the keystore is offline, request
// paths fail fast without calling it; a request after ProbeInterval starts
// one background probe, and once that succeeds the keystore serves again.
func TestBreakerProbesOnRequest(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	s.now = func() time.Time { return time.Unix(0, clock.Load()) }
	s.cfg.Cache.ProbeInterval = time.Second
	st.SetUnreachable(true)
	s.checkHealth(ctx)
	if !s.Offline() {
		t.Fatal("not offline")
	}
	is502 := func(err error) bool {
		var ke kes.Error
		return errors.As(err, &ke) && ke.Code == 502
	}
	st.ResetCalls()
	for range 3 {
		if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); !is502(err) {
			t.Fatalf("create while offline: %v", err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the request-started probe", func() bool { return st.Calls().Status == 1 })
	if c := st.Calls(); c.Total() != 1 {
		t.Fatalf("keystore calls while offline = %+v, want one probe", c)
	}
	st.SetUnreachable(false)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); !is502(err) {
		t.Fatalf("create within the probe interval: %v", err)
	}
	clock.Add(int64(time.Second))
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); !is502(err) {
		t.Fatalf("the request that starts a probe still fails fast: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "back online after the probe", func() bool { return !s.Offline() })
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
}

// lateCreate runs after once, right after its listing was taken: a key
// created while a revalidation lists the keystore.
type lateCreate struct {
	*mem.Store
	after func()
}

func (l *lateCreate) ListVersions(ctx context.Context, prefix string) ([]store.Entry, error) {
	entries, err := l.Store.ListVersions(ctx, prefix)
	if f := l.after; f != nil {
		l.after = nil
		f()
	}
	return entries, err
}

// TestRevalidateKeepsKeysCreatedDuringTheListing: a key created after the
// listing was taken is not in it, and must not be evicted for that.
func TestRevalidateKeepsKeysCreatedDuringTheListing(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	s.cfg.Store = &lateCreate{Store: st, after: func() {
		if err := s.CreateKey(ctx, DefaultEnclave, "late", admin); err != nil {
			t.Error(err)
		}
	}}
	s.revalidate(ctx)
	if _, ok := f.Key(DefaultEnclave, "late"); !ok {
		t.Fatal("a key created during the listing was evicted")
	}
	s.revalidate(ctx) // the next listing shows it
	if _, ok := f.Key(DefaultEnclave, "late"); !ok {
		t.Fatal("the key was evicted by the next revalidation")
	}
}
