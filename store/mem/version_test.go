package mem_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/mem"
)

// TestReplaceChangesVersion: Replace, as an operator replacing a key behind
// the cluster's back, gives the entry a new version and value; nothing else
// about the store changes.
func TestReplaceChangesVersion(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	v1, err := s.CreateVersion(ctx, "k", []byte("first"))
	if err != nil || v1 == "" {
		t.Fatalf("CreateVersion = (%q, %v), want a version", v1, err)
	}
	other, err := s.CreateVersion(ctx, "other", []byte("first"))
	if err != nil || other == v1 {
		t.Fatalf("CreateVersion(other) = (%q, %v), want a version unlike %q", other, err, v1)
	}
	s.ResetCalls()

	s.Replace("k", []byte("second"))
	if c := s.Calls(); c.Total() != 0 {
		t.Fatalf("Replace counted calls: %+v", c)
	}
	got, v2, err := s.GetVersion(ctx, "k")
	if err != nil || string(got) != "second" {
		t.Fatalf("GetVersion after Replace = (%q, %v), want second", got, err)
	}
	if v2 == "" || v2 == v1 {
		t.Fatalf("version after Replace = %q, want a new one (was %q)", v2, v1)
	}
	entries, err := s.ListVersions(ctx, "")
	want := []store.Entry{{Name: "k", Version: v2}, {Name: "other", Version: other}}
	if err != nil || !slices.Equal(entries, want) {
		t.Fatalf("ListVersions = (%v, %v), want %v", entries, err, want)
	}

	// The same value again is still a new version.
	s.Replace("k", []byte("second"))
	if _, v3, err := s.GetVersion(ctx, "k"); err != nil || v3 == v2 {
		t.Fatalf("version after replacing with the same value = (%q, %v), want a new one", v3, err)
	}

	// Replace of a missing name creates it.
	s.Replace("new", []byte("added"))
	if got, v, err := s.GetVersion(ctx, "new"); err != nil || string(got) != "added" || v == "" {
		t.Fatalf("GetVersion(new) after Replace = (%q, %q, %v)", got, v, err)
	}

	// A deleted and re-created entry gets a new version too.
	if err := s.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if again, err := s.CreateVersion(ctx, "other", []byte("first")); err != nil || again == other {
		t.Fatalf("CreateVersion after Delete = (%q, %v), want a version unlike %q", again, err, other)
	}

	// After Close, Replace does nothing (and does not panic).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Replace("k", []byte("third"))
}

// TestReplaceDoesNotAliasCaller: Replace copies value, and a value returned
// before a Replace is unaffected by it.
func TestReplaceDoesNotAliasCaller(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	s.Replace("k", []byte("one"))
	before, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	in := []byte("two")
	s.Replace("k", in)
	in[0] = 'X'
	if string(before) != "one" {
		t.Errorf("value read before Replace = %q, want one", before)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "two" {
		t.Errorf("Get after the caller changed its buffer = (%q, %v), want two", got, err)
	}
}

// TestVersionedCallsAndHooks: the Versioned methods are counted and hooked
// as the methods they extend, and fail the same ways.
func TestVersionedCallsAndHooks(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	var mu sync.Mutex
	var seen []string
	injected := errors.New("injected")
	s.SetHook(func(_ context.Context, op mem.Op, name string) error {
		mu.Lock()
		seen = append(seen, op.String()+":"+name)
		mu.Unlock()
		if name == "fail" {
			return injected
		}
		return nil
	})
	_, _ = s.CreateVersion(ctx, "a", []byte("1"))
	_, _ = s.CreateVersion(ctx, "a", []byte("2")) // ErrExists, still counted
	_, _, _ = s.GetVersion(ctx, "a")
	_, _, _ = s.GetVersion(ctx, "missing")
	_, _ = s.ListVersions(ctx, "p")
	want := mem.Calls{Create: 2, Get: 2, List: 1}
	if got := s.Calls(); got != want {
		t.Fatalf("Calls = %+v, want %+v", got, want)
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if wantSeen := []string{"Create:a", "Create:a", "Get:a", "Get:missing", "List:p"}; !slices.Equal(got, wantSeen) {
		t.Fatalf("hook saw %q, want %q", got, wantSeen)
	}

	if v, err := s.CreateVersion(ctx, "fail", []byte("v")); !errors.Is(err, injected) || v != "" {
		t.Errorf("CreateVersion with an injected failure = (%q, %v)", v, err)
	}
	if _, v, err := s.GetVersion(ctx, "fail"); !errors.Is(err, injected) || v != "" {
		t.Errorf("GetVersion with an injected failure = (%q, %v)", v, err)
	}
	if _, err := s.ListVersions(ctx, "fail"); !errors.Is(err, injected) {
		t.Errorf("ListVersions with an injected failure = %v", err)
	}

	s.SetHook(nil)
	s.SetUnreachable(true)
	if _, err := s.CreateVersion(ctx, "b", []byte("v")); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("CreateVersion while unreachable = %v", err)
	}
	if _, _, err := s.GetVersion(ctx, "a"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("GetVersion while unreachable = %v", err)
	}
	if _, err := s.ListVersions(ctx, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("ListVersions while unreachable = %v", err)
	}
	s.SetUnreachable(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListVersions(ctx, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("ListVersions after Close = %v", err)
	}
}

// TestEmptyValueIsNotNil: a stored empty value reads back as an empty,
// non-nil slice, as before versions were added.
func TestEmptyValueIsNotNil(t *testing.T) {
	s := mem.New()
	if err := s.Create(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(t.Context(), "k"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get = (%#v, %v), want an empty non-nil slice", v, err)
	}
}
