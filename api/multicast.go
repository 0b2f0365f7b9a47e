package api

import (
	"sync"
	"sync/atomic"
)

// Multicast fans events (byte slices) out to subscribers. Each subscriber
// has a bounded buffer; Publish never blocks, so a slow subscriber loses
// events instead of slowing down the publisher. The zero value is not
// usable; create one with NewMulticast. All methods are safe for concurrent
// use.
type Multicast struct {
	buffer int
	n      atomic.Int64 // number of subscribers, for a lock-free fast path

	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription receives a Multicast's events on C until Cancel is called
// or the Multicast is closed; then C is closed.
type Subscription struct {
	// C delivers the events. Receivers must not modify them: every
	// subscriber receives the same slice.
	C <-chan []byte

	c       chan []byte
	m       *Multicast
	dropped atomic.Uint64
}

// NewMulticast returns a Multicast whose subscribers each buffer up to
// buffer events (at least 1).
func NewMulticast(buffer int) *Multicast {
	return &Multicast{buffer: max(buffer, 1), subs: map[*Subscription]struct{}{}}
}

// Subscribe returns a new subscription. If the Multicast is closed, the
// subscription's channel is already closed.
func (m *Multicast) Subscribe() *Subscription {
	c := make(chan []byte, m.buffer)
	s := &Subscription{C: c, c: c, m: m}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(c)
		return s
	}
	m.subs[s] = struct{}{}
	m.n.Add(1)
	return s
}

// Subscribers returns the number of current subscribers.
func (m *Multicast) Subscribers() int { return int(m.n.Load()) }

// Publish delivers event to every subscriber whose buffer has room and
// drops it for the others. The Multicast keeps a reference to event, so the
// caller must not modify it afterwards. Publish on a closed Multicast does
// nothing.
func (m *Multicast) Publish(event []byte) {
	if m.n.Load() == 0 {
		return
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for s := range m.subs {
		select {
		case s.c <- event:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close closes every subscription and makes later subscriptions start
// closed. It is idempotent.
func (m *Multicast) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	for s := range m.subs {
		close(s.c)
		delete(m.subs, s)
	}
	m.n.Store(0)
}

// Cancel ends the subscription and closes C. It is idempotent.
func (s *Subscription) Cancel() {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[s]; ok {
		delete(m.subs, s)
		m.n.Add(-1)
		close(s.c)
	}
}

// Dropped returns how many events were dropped because C was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }
