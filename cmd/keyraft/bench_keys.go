package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/keyraft/keyraft/api/client"
)

// zipfS is the exponent of the zipf key distribution: key i is picked with
// a probability proportional to 1/(1+i)^zipfS, so key 0 is the hottest.
const zipfS = 1.1

// benchSetupParallel bounds the concurrent requests that create the keys
// and seal the data keys before a run.
const benchSetupParallel = 32

// keyPicker returns the index of the key the next request uses. A picker
// has its own random source and is not safe for concurrent use: every
// worker gets its own, so that picking takes no shared lock.
type keyPicker func() int

// newKeyPicker returns a picker over n keys (indices 0 to n-1) that follows
// dist, "uniform" or "zipf", seeded with seed.
func newKeyPicker(dist string, n int, seed uint64) (keyPicker, error) {
	if n < 1 {
		return nil, fmt.Errorf("key count %d is not positive", n)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	switch dist {
	case "uniform":
		if n == 1 {
			return func() int { return 0 }, nil
		}
		return func() int { return r.IntN(n) }, nil
	case "zipf":
		if n == 1 {
			return func() int { return 0 }, nil
		}
		z := rand.NewZipf(r, zipfS, 1, uint64(n-1))
		return func() int { return int(z.Uint64()) }, nil
	}
	return nil, fmt.Errorf("--dist must be uniform or zipf, not %q", dist)
}

// benchKeyNames returns the names of the n bench keys: name itself for one
// key (what bench always used), else name-0 to name-(n-1).
func benchKeyNames(name string, n int) []string {
	if n == 1 {
		return []string{name}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = name + "-" + strconv.Itoa(i)
	}
	return names
}

// createBenchKeys creates the keys that do not exist yet, at most
// benchSetupParallel at a time; "key already exists" is not an error.
func createBenchKeys(ctx context.Context, c *client.Client, names []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(benchSetupParallel)
	for _, name := range names {
		g.Go(func() error {
			if err := c.CreateKey(ctx, name); err != nil && !errors.Is(err, client.ErrKeyExists) {
				return fmt.Errorf("failed to create key %q: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// sealBenchDEKs generates one data key per key, with the associated data
// assoc, and returns the ciphertexts in the order of names, so that decrypt
// requests for key i can send ciphertexts[i].
func sealBenchDEKs(ctx context.Context, c *client.Client, names []string, assoc []byte) ([][]byte, error) {
	cts := make([][]byte, len(names))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(benchSetupParallel)
	for i, name := range names {
		g.Go(func() error {
			dek, err := c.GenerateKey(ctx, name, assoc)
			if err != nil {
				return fmt.Errorf("failed to generate a data key with %q: %w", name, err)
			}
			cts[i] = dek.Ciphertext
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return cts, nil
}
