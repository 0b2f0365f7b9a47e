package mem_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/mem"
	"github.com/keyraft/keyraft/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return mem.New() })
}

// allOps calls every counted method once and returns their errors.
func allOps(ctx context.Context, s *mem.Store, name string) map[mem.Op]error {
	_, getErr := s.Get(ctx, name)
	_, listErr := s.List(ctx, "")
	_, statusErr := s.Status(ctx)
	return map[mem.Op]error{
		mem.OpCreate: s.Create(ctx, name+"-new", []byte("v")),
		mem.OpGet:    getErr,
		mem.OpDelete: s.Delete(ctx, name),
		mem.OpList:   listErr,
		mem.OpStatus: statusErr,
	}
}

func TestSetUnreachable(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	s.SetUnreachable(true)
	for op, err := range allOps(ctx, s, "k") {
		if !errors.Is(err, store.ErrUnreachable) {
			t.Errorf("%v while unreachable = %v, want ErrUnreachable", op, err)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d after failed calls, want 1 (unchanged)", s.Len())
	}

	s.SetUnreachable(false)
	v, err := s.Get(ctx, "k")
	if err != nil || string(v) != "v" {
		t.Fatalf("Get after recovery = (%q, %v), want (\"v\", nil)", v, err)
	}
}

func TestCalls(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	if c := s.Calls(); c != (mem.Calls{}) {
		t.Fatalf("fresh Calls = %+v, want zero", c)
	}
	_ = s.Create(ctx, "a", []byte("1"))
	_ = s.Create(ctx, "a", []byte("2")) // fails with ErrExists, still counted
	_, _ = s.Get(ctx, "a")
	_, _ = s.Get(ctx, "missing")
	_, _ = s.Get(ctx, "a")
	_ = s.Delete(ctx, "a")
	_, _ = s.List(ctx, "")
	_, _ = s.Status(ctx)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = s.Status(cancelled) // fails, still counted

	want := mem.Calls{Create: 2, Get: 3, Delete: 1, List: 1, Status: 2}
	if got := s.Calls(); got != want {
		t.Fatalf("Calls = %+v, want %+v", got, want)
	}
	if got := s.Calls().Total(); got != 9 {
		t.Fatalf("Total = %d, want 9", got)
	}
	s.ResetCalls()
	if c := s.Calls(); c.Total() != 0 {
		t.Fatalf("Calls after ResetCalls = %+v, want zero", c)
	}
}

func TestHookInjectsPerOpFailure(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	injected := errors.New("injected")
	var mu sync.Mutex
	var seen []string
	s.SetHook(func(_ context.Context, op mem.Op, name string) error {
		mu.Lock()
		seen = append(seen, op.String()+":"+name)
		mu.Unlock()
		if op == mem.OpCreate {
			return injected
		}
		return nil
	})
	if err := s.Create(ctx, "k", []byte("v")); !errors.Is(err, injected) {
		t.Fatalf("Create = %v, want the injected error", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after failed Create = %v, want ErrNotFound", err)
	}
	mu.Lock()
	got := append([]string(nil), seen...)
	mu.Unlock()
	if len(got) != 2 || got[0] != "Create:k" || got[1] != "Get:k" {
		t.Fatalf("hook saw %q, want [Create:k Get:k]", got)
	}

	s.SetHook(nil)
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create after removing the hook: %v", err)
	}
}

func TestHookCanHoldCallsInFlight(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	s.SetHook(func(ctx context.Context, op mem.Op, _ string) error {
		if op != mem.OpGet {
			return nil
		}
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	done := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, "k")
		done <- err
	}()
	<-entered
	// While Get is held, other methods (and the lock) stay available.
	if _, err := s.List(ctx, ""); err != nil {
		t.Fatalf("List while a Get is held: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("held Get returned early: %v", err)
	default:
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("released Get: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("released Get did not return")
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for op, err := range allOps(ctx, s, "k") {
		if !errors.Is(err, store.ErrUnreachable) {
			t.Errorf("%v after Close = %v, want ErrUnreachable", op, err)
		}
	}
}

func TestDeleteRemovesEntry(t *testing.T) {
	ctx := t.Context()
	s := mem.New()
	if err := s.Create(ctx, "k", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len after Delete = %d, want 0", s.Len())
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[mem.Op]string{
		mem.OpCreate: "Create", mem.OpGet: "Get", mem.OpDelete: "Delete",
		mem.OpList: "List", mem.OpStatus: "Status", mem.Op(99): "Op(99)",
	} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", int(op), got, want)
		}
	}
}
