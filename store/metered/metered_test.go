package metered

import (
	"context"
	"testing"

	"github.com/keyraft/keyraft/store/mem"
)

func TestCountsEveryCallByKind(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	s := New(inner)
	if err := s.Create(ctx, "a", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(ctx, "b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetVersion(ctx, "missing"); err == nil {
		t.Fatal("GetVersion of a missing entry succeeded")
	}
	if _, err := s.ListVersions(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{Create: 2, Get: 2, Delete: 1, List: 1, Status: 0, "bogus": 0}
	for kind, n := range want {
		if got := s.Calls(kind); got != n {
			t.Errorf("Calls(%q) = %d, want %d", kind, got, n)
		}
	}
	if got := inner.Calls().Total(); got != 6 {
		t.Errorf("the wrapped store saw %d calls, want 6", got)
	}
}
