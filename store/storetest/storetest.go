// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's own _test.go file calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newBackend(t) })
//	}
//
// The suite tolerates a shared, non-empty backend (for example one AWS account
// or emulator): every subtest writes only names under its own random prefix,
// deletes them again when it ends, and never assumes the store is empty.
//
// A store that implements store.Versioned must also pass the version
// subtests (they are skipped for other stores): the version CreateVersion
// returns is the one GetVersion and ListVersions report, versions are never
// empty, an entry's version changes with no operation on another name, and
// ListVersions lists exactly the names List lists. That a version changes
// when a value is replaced behind the store's back is backend specific and
// left to each backend's own tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/store"
)

// Options tunes the suite for a backend's documented limits.
type Options struct {
	// MaxValueSize is the largest value (in bytes) the backend can store.
	// Zero means no limit: the suite then stores values up to 1 MiB.
	// AWS Secrets Manager, for example, caps a secret value at 64 KiB.
	MaxValueSize int
}

// subtestTimeout bounds every subtest, so a hung backend fails instead of
// stalling the whole test binary.
const subtestTimeout = 30 * time.Second

// concurrency is the number of goroutines the concurrent subtests start.
const concurrency = 64

// Run runs the conformance suite with default Options. See RunWith.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	RunWith(t, newStore, Options{})
}

// RunWith runs every conformance subtest against stores returned by newStore.
//
// newStore is called once per subtest and must return a ready store; it may
// call t.Fatal if it cannot. The suite closes each store when its subtest
// ends (after deleting the names it created), so newStore must not close it
// itself. Subtests run sequentially; failures are reported through t.
func RunWith(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	t.Helper()
	maxSize := 1 << 20
	if opts.MaxValueSize > 0 && opts.MaxValueSize < maxSize {
		maxSize = opts.MaxValueSize
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"DeleteThenGet", testDeleteThenGet},
		{"DeleteMissing", testDeleteMissing},
		{"DeleteThenRecreate", testDeleteThenRecreate},
		{"EmptyName", testEmptyName},
		{"ListSortedPrefix", testListSortedPrefix},
		{"ListEmptyPrefixListsAll", testListEmptyPrefix},
		{"ValueSizes", func(t *testing.T, h *harness) { testValueSizes(t, h, maxSize) }},
		{"ValuesAreCopied", testValuesCopied},
		{"ConcurrentCreateSameName", testConcurrentCreateSame},
		{"ConcurrentCreateDistinctNames", testConcurrentCreateDistinct},
		{"Status", testStatus},
		{"CancelledContext", testCancelledContext},
		{"Versions", testVersions},
		{"VersionsIndependent", testVersionsIndependent},
		{"VersionsListMatchesList", testVersionsListMatchesList},
		{"VersionsHelpers", testVersionsHelpers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newHarness(t, newStore))
		})
	}
}

// harness bundles the store under test, a context and this subtest's name prefix.
type harness struct {
	s      store.Store
	ctx    context.Context
	prefix string
}

func newHarness(t *testing.T, newStore func(t *testing.T) store.Store) *harness {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned a nil store")
	}
	// Cleanups run last-in first-out: delete our names, then close.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	t.Cleanup(cancel)

	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatalf("random prefix: %v", err)
	}
	h := &harness{s: s, ctx: ctx, prefix: "st" + hex.EncodeToString(r[:]) + "_"}
	t.Cleanup(func() { h.cleanup(t) })
	return h
}

// cleanup deletes every name under the subtest's prefix, so a shared backend
// is left as the subtest found it.
func (h *harness) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	defer cancel()
	names, err := h.s.List(ctx, h.prefix)
	if err != nil {
		t.Logf("cleanup: List(%q): %v", h.prefix, err)
		return
	}
	for _, n := range names {
		if err := h.s.Delete(ctx, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Logf("cleanup: Delete(%q): %v", n, err)
		}
	}
}

// name returns a name under this subtest's prefix.
func (h *harness) name(suffix string) string { return h.prefix + suffix }

func (h *harness) mustCreate(t *testing.T, name string, value []byte) {
	t.Helper()
	if err := h.s.Create(h.ctx, name, value); err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
}

func (h *harness) mustGet(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := h.s.Get(h.ctx, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s, want %s", name, describe(got), describe(want))
	}
}

func (h *harness) mustList(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := h.s.List(h.ctx, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func (h *harness) wantNotFound(t *testing.T, name string) {
	t.Helper()
	if v, err := h.s.Get(h.ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = (%s, %v), want ErrNotFound", name, describe(v), err)
	}
}

// describe summarises a value without dumping it (values can be 1 MiB).
func describe(b []byte) string {
	if len(b) <= 16 {
		return fmt.Sprintf("%d bytes %x", len(b), b)
	}
	return fmt.Sprintf("%d bytes %x…", len(b), b[:16])
}

func testCreateGet(t *testing.T, h *harness) {
	n := h.name("key")
	v := []byte("eyJieXRlcyI6IkFBQUEifQ==")
	h.mustCreate(t, n, v)
	h.mustGet(t, n, v)
	// A second read returns the same value.
	h.mustGet(t, n, v)
}

func testCreateExisting(t *testing.T, h *harness) {
	n := h.name("key")
	orig := []byte("original value")
	h.mustCreate(t, n, orig)
	err := h.s.Create(h.ctx, n, []byte("replacement value"))
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create(%q) = %v, want ErrExists", n, err)
	}
	h.mustGet(t, n, orig)
}

func testGetMissing(t *testing.T, h *harness) {
	h.wantNotFound(t, h.name("missing"))
}

func testDeleteThenGet(t *testing.T, h *harness) {
	n := h.name("key")
	h.mustCreate(t, n, []byte("v"))
	if err := h.s.Delete(h.ctx, n); err != nil {
		t.Fatalf("Delete(%q): %v", n, err)
	}
	h.wantNotFound(t, n)
	if names := h.mustList(t, h.prefix); len(names) != 0 {
		t.Fatalf("List after Delete = %q, want none", names)
	}
}

func testDeleteMissing(t *testing.T, h *harness) {
	n := h.name("missing")
	if err := h.s.Delete(h.ctx, n); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete(%q) = %v, want ErrNotFound", n, err)
	}
	// Deleting twice: the second Delete reports ErrNotFound too.
	h.mustCreate(t, n, []byte("v"))
	if err := h.s.Delete(h.ctx, n); err != nil {
		t.Fatalf("Delete(%q): %v", n, err)
	}
	if err := h.s.Delete(h.ctx, n); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete(%q) = %v, want ErrNotFound", n, err)
	}
}

func testDeleteThenRecreate(t *testing.T, h *harness) {
	n := h.name("key")
	h.mustCreate(t, n, []byte("first"))
	if err := h.s.Delete(h.ctx, n); err != nil {
		t.Fatalf("Delete(%q): %v", n, err)
	}
	h.mustCreate(t, n, []byte("second"))
	h.mustGet(t, n, []byte("second"))
}

func testEmptyName(t *testing.T, h *harness) {
	if err := h.s.Create(h.ctx, "", []byte("v")); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf(`Create("") = %v, want ErrInvalidName`, err)
	}
	if v, err := h.s.Get(h.ctx, ""); err == nil {
		t.Fatalf(`Get("") = %s, want an error`, describe(v))
	}
	if err := h.s.Delete(h.ctx, ""); err == nil {
		t.Fatal(`Delete("") succeeded, want an error`)
	}
}

func testListSortedPrefix(t *testing.T, h *harness) {
	suffixes := []string{"b", "a-1", "A", "a_2", "ab", "c-d_e", "0", "a", "a-", "_x", "Z9"}
	var all []string
	for _, s := range suffixes {
		n := h.name(s)
		h.mustCreate(t, n, []byte(s))
		all = append(all, n)
	}
	slices.Sort(all)

	if got := h.mustList(t, h.prefix); !slices.Equal(got, all) {
		t.Fatalf("List(%q) = %q, want %q", h.prefix, got, all)
	}
	for _, p := range []string{"a", "a-", "a_", "ab", "c-d", "Z", "_", "0"} {
		prefix := h.name(p)
		var want []string
		for _, n := range all {
			if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
				want = append(want, n)
			}
		}
		if got := h.mustList(t, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	if got := h.mustList(t, h.name("zzz")); len(got) != 0 {
		t.Errorf("List(%q) = %q, want none", h.name("zzz"), got)
	}
	// A prefix equal to a full name lists that name (and its extensions).
	exact := h.name("c-d_e")
	if got := h.mustList(t, exact); !slices.Equal(got, []string{exact}) {
		t.Errorf("List(%q) = %q, want [%q]", exact, got, exact)
	}
}

func testListEmptyPrefix(t *testing.T, h *harness) {
	created := []string{h.name("one"), h.name("two"), h.name("three")}
	for _, n := range created {
		h.mustCreate(t, n, []byte(n))
	}
	got := h.mustList(t, "")
	if !slices.IsSorted(got) {
		t.Fatalf(`List("") is not sorted: %q`, got)
	}
	if i := slices.IndexFunc(got, func(n string) bool { return n == "" }); i >= 0 {
		t.Fatalf(`List("") contains an empty name at %d`, i)
	}
	for _, n := range created {
		if _, ok := slices.BinarySearch(got, n); !ok {
			t.Errorf(`List("") lacks %q`, n)
		}
	}
	if c := compactLen(got); c != len(got) {
		t.Errorf(`List("") has duplicates: %d names, %d distinct`, len(got), c)
	}
}

func compactLen(sorted []string) int { return len(slices.Compact(slices.Clone(sorted))) }

// values returns test values of various sizes up to maxSize: text, every byte
// value, NUL runs, invalid UTF-8 and random bytes.
func values(t *testing.T, maxSize int) map[string][]byte {
	t.Helper()
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	vs := map[string][]byte{
		"one-byte":     {0x00},
		"text":         []byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`),
		"every-byte":   every,
		"nul-run":      make([]byte, 100),
		"invalid-utf8": {0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1},
		"newlines":     []byte("line1\nline2\r\n\x00trailing\n"),
	}
	for _, size := range []int{31, 32, 33, 255, 4096, 64 << 10, 1 << 20} {
		if size > maxSize {
			continue
		}
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			t.Fatalf("random value: %v", err)
		}
		vs[fmt.Sprintf("random-%d", size)] = b
	}
	if maxSize < 1<<20 {
		b := make([]byte, maxSize)
		if _, err := rand.Read(b); err != nil {
			t.Fatalf("random value: %v", err)
		}
		vs[fmt.Sprintf("random-max-%d", maxSize)] = b
	}
	return vs
}

func testValueSizes(t *testing.T, h *harness, maxSize int) {
	vs := values(t, maxSize)
	for label, v := range vs {
		h.mustCreate(t, h.name(label), v)
	}
	for label, v := range vs {
		h.mustGet(t, h.name(label), v)
	}
	if got := h.mustList(t, h.prefix); len(got) != len(vs) {
		t.Fatalf("List(%q) returned %d names, want %d", h.prefix, len(got), len(vs))
	}
}

func testValuesCopied(t *testing.T, h *harness) {
	n := h.name("key")
	in := []byte("stored value")
	want := slices.Clone(in)
	h.mustCreate(t, n, in)
	in[0] = 'X' // the caller may reuse its buffer after Create

	got, err := h.s.Get(h.ctx, n)
	if err != nil {
		t.Fatalf("Get(%q): %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q after the caller changed its buffer, want %q", n, got, want)
	}
	clear(got) // the caller may zero what Get returned
	h.mustGet(t, n, want)
}

func testConcurrentCreateSame(t *testing.T, h *harness) {
	n := h.name("contended")
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make([]error, concurrency)
		valueOf = func(i int) []byte { return fmt.Appendf(nil, "value-from-goroutine-%02d", i) }
	)
	for i := range concurrency {
		wg.Go(func() {
			<-start
			errs[i] = h.s.Create(h.ctx, n, valueOf(i))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("Create(%q) succeeded in goroutines %d and %d", n, winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("goroutine %d: Create(%q) = %v, want nil or ErrExists", i, n, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent Create(%q) succeeded", n)
	}
	h.mustGet(t, n, valueOf(winner))
	if got := h.mustList(t, h.prefix); !slices.Equal(got, []string{n}) {
		t.Fatalf("List(%q) = %q, want [%q]", h.prefix, got, n)
	}
}

func testConcurrentCreateDistinct(t *testing.T, h *harness) {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, concurrency)
		names = make([]string, concurrency)
	)
	for i := range concurrency {
		names[i] = h.name(fmt.Sprintf("k-%02d", i))
		wg.Go(func() {
			<-start
			errs[i] = h.s.Create(h.ctx, names[i], []byte(names[i]))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create(%q): %v", names[i], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(names)
	if got := h.mustList(t, h.prefix); !slices.Equal(got, names) {
		t.Fatalf("List(%q) = %q, want %q", h.prefix, got, names)
	}
	for _, n := range names {
		h.mustGet(t, n, []byte(n))
	}
}

func testStatus(t *testing.T, h *harness) {
	st, err := h.s.Status(h.ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Latency < 0 {
		t.Fatalf("Status latency = %v, want >= 0", st.Latency)
	}
}

// wantCtxErr checks the contract for a cancelled context: a (wrapped)
// context error or ErrUnreachable.
func wantCtxErr(t *testing.T, op string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s with a cancelled context succeeded, want an error", op)
		return
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("%s with a cancelled context = %v, want context.Canceled or ErrUnreachable", op, err)
	}
}

func testCancelledContext(t *testing.T, h *harness) {
	existing := h.name("existing")
	h.mustCreate(t, existing, []byte("v"))

	ctx, cancel := context.WithCancel(h.ctx)
	cancel()

	fresh := h.name("fresh")
	wantCtxErr(t, "Create", h.s.Create(ctx, fresh, []byte("v")))
	_, err := h.s.Get(ctx, existing)
	wantCtxErr(t, "Get", err)
	wantCtxErr(t, "Delete", h.s.Delete(ctx, existing))
	_, err = h.s.List(ctx, h.prefix)
	wantCtxErr(t, "List", err)
	_, err = h.s.Status(ctx)
	wantCtxErr(t, "Status", err)

	if v, ok := h.s.(store.Versioned); ok {
		_, err = v.CreateVersion(ctx, fresh, []byte("v"))
		wantCtxErr(t, "CreateVersion", err)
		_, _, err = v.GetVersion(ctx, existing)
		wantCtxErr(t, "GetVersion", err)
		_, err = v.ListVersions(ctx, h.prefix)
		wantCtxErr(t, "ListVersions", err)
	}

	// The cancelled calls changed nothing.
	h.wantNotFound(t, fresh)
	h.mustGet(t, existing, []byte("v"))
}
