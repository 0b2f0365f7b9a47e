package systemtest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyraft/keyraft/api/client"
)

// loadStats counts what the generate/decrypt workers did.
type loadStats struct {
	total, failed, wrong atomic.Int64
	afterKill            atomic.Int64 // requests completed after the kill
	maxAfterKill         atomic.Int64 // slowest successful request that ended after the kill, ns

	mu     sync.Mutex
	errors []string // the first few failures, with their time
}

func (s *loadStats) fail(at time.Time, op string, err error) {
	s.failed.Add(1)
	s.mu.Lock()
	if len(s.errors) < 10 {
		s.errors = append(s.errors, fmt.Sprintf("%s %s: %v", at.Format("15:04:05.000"), op, err))
	}
	s.mu.Unlock()
}

func (s *loadStats) observe(d time.Duration) {
	for {
		cur := s.maxAfterKill.Load()
		if int64(d) <= cur || s.maxAfterKill.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// runLoad drives generate and decrypt (alternating; every decrypt opens
// the worker's previous data key and checks the plaintext) from one client
// per worker until end. killed reports the time of the leader kill (zero
// before it).
func runLoad(clients []*client.Client, key string, end time.Time, killed func() time.Time) *loadStats {
	st := &loadStats{}
	assoc := []byte(`{"bucket":"process-test/object"}`)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last client.DEK
			defer func() { clear(last.Plaintext) }()
			for i := 0; time.Now().Before(end); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				start := time.Now()
				op := "generate"
				var err error
				if i%2 == 0 || last.Ciphertext == nil {
					var dek client.DEK
					if dek, err = c.GenerateKey(ctx, key, assoc); err == nil {
						clear(last.Plaintext)
						last = dek
					}
				} else {
					op = "decrypt"
					var pt []byte
					if pt, err = c.Decrypt(ctx, key, last.Ciphertext, assoc); err == nil &&
						subtle.ConstantTimeCompare(pt, last.Plaintext) != 1 {
						st.wrong.Add(1)
						err = errors.New("decrypted data key differs from the generated one")
					}
					clear(pt)
				}
				cancel()
				now := time.Now()
				st.total.Add(1)
				if k := killed(); !k.IsZero() && now.After(k) {
					st.afterKill.Add(1)
					if err == nil {
						st.observe(now.Sub(start))
					}
				}
				if err != nil {
					st.fail(now, op, err)
				}
			}
		}()
	}
	wg.Wait()
	return st
}

// failoverProbe is the result of pollCreate.
type failoverProbe struct {
	key      string        // the first key whose create succeeded after the kill
	after    time.Duration // from the kill until that create succeeded
	attempts int
	failed   int
	errors   []string // the first failed attempts (expected while there is no leader)
}

// pollCreate starts a create of a new key every 100 ms, alternating between
// the given single-node clients, each attempt with its own 5 s deadline,
// until one succeeds or within has passed since killedAt. Overlapping
// attempts make the measured time the moment writes work again rather than
// a multiple of an attempt's deadline: an attempt that waits for the new
// leader completes as soon as there is one.
func pollCreate(nodes []*client.Client, prefix string, killedAt time.Time, within time.Duration) failoverProbe {
	var (
		p    failoverProbe
		mu   sync.Mutex
		wg   sync.WaitGroup
		won  = make(chan struct{})
		once sync.Once
	)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for i := 0; time.Since(killedAt) < within; i++ {
		c, name := nodes[i%len(nodes)], fmt.Sprintf("%s-%d", prefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.CreateKey(ctx, name)
			cancel()
			at := time.Since(killedAt)
			mu.Lock()
			defer mu.Unlock()
			p.attempts++
			if err != nil {
				p.failed++
				if len(p.errors) < 10 {
					p.errors = append(p.errors, fmt.Sprintf("+%v %s: %v", at.Round(time.Millisecond), name, err))
				}
				return
			}
			if p.key == "" || at < p.after {
				p.key, p.after = name, at
			}
			once.Do(func() { close(won) })
		}()
		select {
		case <-won:
			break loop
		case <-tick.C:
		}
	}
	wg.Wait()
	return p
}
