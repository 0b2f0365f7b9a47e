package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineCtx(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	type key struct{}
	parent = context.WithValue(parent, key{}, "v")

	c := &deadlineCtx{parent: parent, deadline: time.Now().Add(time.Hour)}
	if d, ok := c.Deadline(); !ok || !d.Equal(c.deadline) {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	if c.Err() != nil || c.Value(key{}) != "v" {
		t.Fatalf("fresh context: Err %v, Value %v", c.Err(), c.Value(key{}))
	}
	if c.inner != nil {
		t.Fatal("Err or Value made a timer")
	}
	c.end()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("after end: Err %v", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("after end: Done not closed")
	}

	past := &deadlineCtx{parent: parent, deadline: time.Now().Add(-time.Millisecond)}
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("past the deadline: Err %v", past.Err())
	}

	soon := &deadlineCtx{parent: parent, deadline: time.Now().Add(50 * time.Millisecond)}
	select {
	case <-soon.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(soon.Err(), context.DeadlineExceeded) {
		t.Fatalf("at the deadline: Err %v", soon.Err())
	}
	soon.end()
	if !errors.Is(soon.Err(), context.DeadlineExceeded) {
		t.Fatalf("end after the deadline changed Err to %v", soon.Err())
	}

	waiting := &deadlineCtx{parent: parent, deadline: time.Now().Add(time.Hour)}
	done := waiting.Done()
	cancelParent()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed when the parent was cancelled")
	}
	lazy := &deadlineCtx{parent: parent, deadline: time.Now().Add(time.Hour)}
	if !errors.Is(waiting.Err(), context.Canceled) || !errors.Is(lazy.Err(), context.Canceled) {
		t.Fatalf("parent cancelled: Err %v and %v", waiting.Err(), lazy.Err())
	}
}
