package storetest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/store"
)

// The version subtests, run only for stores that implement store.Versioned.

// versioned returns the store as a store.Versioned, or skips the test.
func (h *harness) versioned(t *testing.T) store.Versioned {
	t.Helper()
	v, ok := h.s.(store.Versioned)
	if !ok {
		t.Skip("the store does not implement store.Versioned")
	}
	return v
}

// mustCreateVersion creates name and returns its non-empty version.
func mustCreateVersion(t *testing.T, h *harness, v store.Versioned, name string, value []byte) string {
	t.Helper()
	version, err := v.CreateVersion(h.ctx, name, value)
	if err != nil {
		t.Fatalf("CreateVersion(%q): %v", name, err)
	}
	if version == "" {
		t.Fatalf("CreateVersion(%q) returned an empty version", name)
	}
	return version
}

// mustGetVersion checks that name holds want with version wantVersion.
func mustGetVersion(t *testing.T, h *harness, v store.Versioned, name string, want []byte, wantVersion string) {
	t.Helper()
	got, version, err := v.GetVersion(h.ctx, name)
	if err != nil {
		t.Fatalf("GetVersion(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("GetVersion(%q) = %s, want %s", name, describe(got), describe(want))
	}
	if version != wantVersion {
		t.Fatalf("GetVersion(%q) version = %q, want %q (from CreateVersion)", name, version, wantVersion)
	}
}

// mustListVersions returns ListVersions(prefix) after checking that it is
// sorted by name without duplicates, has no empty name, and has no empty
// version under this subtest's prefix (a shared backend may hold entries
// that others wrote without one).
func mustListVersions(t *testing.T, h *harness, v store.Versioned, prefix string) []store.Entry {
	t.Helper()
	entries, err := v.ListVersions(h.ctx, prefix)
	if err != nil {
		t.Fatalf("ListVersions(%q): %v", prefix, err)
	}
	for i, e := range entries {
		switch {
		case e.Name == "":
			t.Fatalf("ListVersions(%q)[%d] has an empty name", prefix, i)
		case e.Version == "" && strings.HasPrefix(e.Name, h.prefix):
			t.Fatalf("ListVersions(%q)[%d] (%q) has an empty version", prefix, i, e.Name)
		case i > 0 && entries[i-1].Name >= e.Name:
			t.Fatalf("ListVersions(%q) is not strictly sorted by name: %q then %q", prefix, entries[i-1].Name, e.Name)
		}
	}
	return entries
}

// wantVersions checks that ListVersions(h.prefix) is exactly want (name to version).
func wantVersions(t *testing.T, h *harness, v store.Versioned, want map[string]string) {
	t.Helper()
	entries := mustListVersions(t, h, v, h.prefix)
	got := make(map[string]string, len(entries))
	for _, e := range entries {
		got[e.Name] = e.Version
	}
	if len(got) != len(want) {
		t.Fatalf("ListVersions(%q) = %v, want %v", h.prefix, got, want)
	}
	for n, wv := range want {
		if gv, ok := got[n]; !ok || gv != wv {
			t.Fatalf("ListVersions(%q) = %v, want %v", h.prefix, got, want)
		}
	}
}

func testVersions(t *testing.T, h *harness) {
	v := h.versioned(t)
	n := h.name("key")
	value := []byte("eyJieXRlcyI6IkFBQUEifQ==")
	version := mustCreateVersion(t, h, v, n, value)
	mustGetVersion(t, h, v, n, value, version)
	wantVersions(t, h, v, map[string]string{n: version})
	// Reading and listing do not change the version.
	mustGetVersion(t, h, v, n, value, version)
	wantVersions(t, h, v, map[string]string{n: version})

	// A failed CreateVersion changes nothing.
	if _, err := v.CreateVersion(h.ctx, n, []byte("replacement value")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateVersion(%q) = %v, want ErrExists", n, err)
	}
	mustGetVersion(t, h, v, n, value, version)
	wantVersions(t, h, v, map[string]string{n: version})

	missing := h.name("missing")
	if got, _, err := v.GetVersion(h.ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetVersion(%q) = (%s, %v), want ErrNotFound", missing, describe(got), err)
	}
	if _, err := v.CreateVersion(h.ctx, "", []byte("v")); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf(`CreateVersion("") = %v, want ErrInvalidName`, err)
	}
	if got, _, err := v.GetVersion(h.ctx, ""); err == nil {
		t.Fatalf(`GetVersion("") = %s, want an error`, describe(got))
	}

	// The listing of everything has our entry, with its version.
	all := mustListVersions(t, h, v, "")
	i, ok := slices.BinarySearchFunc(all, n, func(e store.Entry, n string) int { return strings.Compare(e.Name, n) })
	if !ok || all[i].Version != version {
		t.Fatalf(`ListVersions("") lacks %q with version %q`, n, version)
	}

	// GetVersion returns a copy, like Get.
	got, _, err := v.GetVersion(h.ctx, n)
	if err != nil {
		t.Fatalf("GetVersion(%q): %v", n, err)
	}
	clear(got)
	mustGetVersion(t, h, v, n, value, version)
}

func testVersionsIndependent(t *testing.T, h *harness) {
	v := h.versioned(t)
	a, b := h.name("a"), h.name("b")
	// The same value under two names.
	value := []byte("the same value")
	va := mustCreateVersion(t, h, v, a, value)
	vb := mustCreateVersion(t, h, v, b, value)
	mustGetVersion(t, h, v, a, value, va)
	mustGetVersion(t, h, v, b, value, vb)
	wantVersions(t, h, v, map[string]string{a: va, b: vb})

	// Deleting and re-creating b leaves a alone.
	if err := h.s.Delete(h.ctx, b); err != nil {
		t.Fatalf("Delete(%q): %v", b, err)
	}
	wantVersions(t, h, v, map[string]string{a: va})
	if _, _, err := v.GetVersion(h.ctx, b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetVersion(%q) after Delete = %v, want ErrNotFound", b, err)
	}
	vb2 := mustCreateVersion(t, h, v, b, []byte("another value"))
	mustGetVersion(t, h, v, b, []byte("another value"), vb2)
	mustGetVersion(t, h, v, a, value, va)
	wantVersions(t, h, v, map[string]string{a: va, b: vb2})

	// Entries made with the plain methods are versioned too.
	c := h.name("c")
	h.mustCreate(t, c, []byte("plain"))
	_, vc, err := v.GetVersion(h.ctx, c)
	if err != nil || vc == "" {
		t.Fatalf("GetVersion(%q) of an entry made by Create = (%q, %v), want a version", c, vc, err)
	}
	wantVersions(t, h, v, map[string]string{a: va, b: vb2, c: vc})
}

func testVersionsListMatchesList(t *testing.T, h *harness) {
	v := h.versioned(t)
	for _, s := range []string{"b", "a-1", "A", "a_2", "ab", "c-d_e", "0", "a", "a-", "_x", "Z9"} {
		h.mustCreate(t, h.name(s), []byte(s))
	}
	for _, p := range []string{"", "a", "a-", "ab", "c-d_e", "Z", "zzz"} {
		prefix := h.name(p)
		names := h.mustList(t, prefix)
		entries := mustListVersions(t, h, v, prefix)
		listed := make([]string, len(entries))
		for i, e := range entries {
			listed[i] = e.Name
		}
		if !slices.Equal(listed, names) {
			t.Errorf("ListVersions(%q) names = %q, List = %q", prefix, listed, names)
		}
		for _, e := range entries {
			_, version, err := v.GetVersion(h.ctx, e.Name)
			if err != nil || version != e.Version {
				t.Errorf("GetVersion(%q) = (%q, %v), ListVersions reported %q", e.Name, version, err, e.Version)
			}
		}
	}
}

// testVersionsHelpers checks that the store package's helpers use the
// Versioned methods.
func testVersionsHelpers(t *testing.T, h *harness) {
	h.versioned(t)
	n := h.name("key")
	version, err := store.CreateVersion(h.ctx, h.s, n, []byte("v"))
	if err != nil || version == "" {
		t.Fatalf("store.CreateVersion(%q) = (%q, %v), want a version", n, version, err)
	}
	if got, gv, err := store.GetVersion(h.ctx, h.s, n); err != nil || string(got) != "v" || gv != version {
		t.Fatalf("store.GetVersion(%q) = (%q, %q, %v), want (v, %q)", n, got, gv, err, version)
	}
	entries, err := store.ListVersions(h.ctx, h.s, h.prefix)
	if err != nil || !slices.Equal(entries, []store.Entry{{Name: n, Version: version}}) {
		t.Fatalf("store.ListVersions(%q) = (%v, %v), want [{%s %s}]", h.prefix, entries, err, n, version)
	}
}
