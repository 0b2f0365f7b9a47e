package store_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/mem"
)

// plain hides the Versioned methods of the store it wraps.
type plain struct{ store.Store }

func TestHelpersFallBackForPlainStores(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	var st store.Store = plain{inner}
	if _, ok := st.(store.Versioned); ok {
		t.Fatal("plain implements store.Versioned")
	}
	if v, err := store.CreateVersion(ctx, st, "k", []byte("v")); err != nil || v != "" {
		t.Fatalf("CreateVersion = (%q, %v), want (\"\", nil)", v, err)
	}
	if _, err := store.CreateVersion(ctx, st, "k", []byte("w")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateVersion = %v, want ErrExists", err)
	}
	if got, v, err := store.GetVersion(ctx, st, "k"); err != nil || string(got) != "v" || v != "" {
		t.Fatalf("GetVersion = (%q, %q, %v), want (v, \"\", nil)", got, v, err)
	}
	if _, _, err := store.GetVersion(ctx, st, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetVersion(missing) = %v, want ErrNotFound", err)
	}
	entries, err := store.ListVersions(ctx, st, "")
	if err != nil || !slices.Equal(entries, []store.Entry{{Name: "k"}}) {
		t.Fatalf("ListVersions = (%v, %v), want [{k }]", entries, err)
	}
	inner.SetUnreachable(true)
	if _, err := store.ListVersions(ctx, st, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("ListVersions while unreachable = %v, want ErrUnreachable", err)
	}
	// The calls went to the plain methods.
	if c := inner.Calls(); c.Create != 2 || c.Get != 2 || c.List != 2 {
		t.Fatalf("Calls = %+v", c)
	}
}
