package systemtest

import (
	"bytes"
	"testing"

	"github.com/keyraft/keyraft/internal/crypto"
)

// TestKeyRotationReadYourWrite: a rotation through one node is seen by
// every other node as soon as it is acknowledged: a generate right after
// it, on another node, uses the new version; every earlier ciphertext
// decrypts on every node.
func TestKeyRotationReadYourWrite(t *testing.T) {
	c := newTestCluster(t, nodeIDs...)
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)
	if err := c.client("n1").CreateKey(bg, "rot"); err != nil {
		t.Fatal(err)
	}
	type sealedDEK struct{ pt, ct []byte }
	var deks []sealedDEK
	for i := range 6 {
		via, other := nodeIDs[i%3], nodeIDs[(i+1)%3]
		// Warm the other node's unsealed copy first, so a stale copy would
		// be used if the rotation were not applied there yet.
		if _, err := c.client(other).GenerateKey(bg, "rot", nil); err != nil {
			t.Fatal(err)
		}
		n, err := c.client(via).RotateKey(bg, "rot")
		if err != nil || n != i+2 {
			t.Fatalf("rotate %d through %s = %d, %v", i+1, via, n, err)
		}
		dek, err := c.client(other).GenerateKey(bg, "rot", nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := crypto.CiphertextVersion(dek.Ciphertext); v != n {
			t.Fatalf("generate on %s right after the rotation through %s used version %d, want %d", other, via, v, n)
		}
		deks = append(deks, sealedDEK{dek.Plaintext, dek.Ciphertext})
	}
	for _, id := range nodeIDs {
		for i, d := range deks {
			pt, err := c.client(id).Decrypt(bg, "rot", d.ct, nil)
			if err != nil || !bytes.Equal(pt, d.pt) {
				t.Fatalf("decrypt of version %d on %s: %v", i+2, id, err)
			}
		}
		info, err := c.client(id).DescribeKey(bg, "rot")
		if err != nil || len(info.Versions) != 7 {
			t.Fatalf("describe on %s: %d versions, %v", id, len(info.Versions), err)
		}
	}
	assertConverged(t, c)
	t.Logf("%d rotations, each seen at once by the next node", len(deks))
}
