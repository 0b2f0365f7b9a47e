package enclave

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// TestUnsealedCopyBytes states what one node's unsealed copy of a key
// costs in memory (key material, cipher state, cache entry), the layer
// cache.expiry.unused and any bound.
func TestUnsealedCopyBytes(t *testing.T) {
	const n = 500
	ctx := context.Background()
	s, _, _ := newTestService(t)
	for i := range n {
		if err := s.CreateKey(ctx, DefaultEnclave, fmt.Sprintf("k%03d", i), admin); err != nil {
			t.Fatal(err)
		}
	}
	s.cache.clear()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for i := range n {
		if _, _, err := s.GenerateKey(ctx, DefaultEnclave, fmt.Sprintf("k%03d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(heap()-before) / n
	t.Logf("one unsealed copy: %.0f B", per)
	if s.CacheStats().Unsealed != n {
		t.Fatalf("%d unsealed copies, want %d", s.CacheStats().Unsealed, n)
	}
	if per > 4096 {
		t.Fatalf("an unsealed copy costs %.0f B, want at most 4 KiB", per)
	}
}
