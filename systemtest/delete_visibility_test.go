package systemtest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/keyraft/keyraft/api/client"
)

// TestDeleteIsVisibleOnEveryNodeWhenAcknowledged: once a delete is
// acknowledged (through any node), no node generates under the key: the
// leader acknowledges only after every member applied the delete.
func TestDeleteIsVisibleOnEveryNodeWhenAcknowledged(t *testing.T) {
	c := threeNodes(t)
	const n = 30
	for i := range n {
		if err := c.client(nodeIDs[i%3]).CreateKey(bg, fmt.Sprintf("vis-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	assertConverged(t, c)
	for i := range n {
		name := fmt.Sprintf("vis-%02d", i)
		via := nodeIDs[i%3]
		for _, id := range nodeIDs { // every node serves the key before
			if _, err := c.client(id).GenerateKey(bg, name, nil); err != nil {
				t.Fatalf("%s on %s before the delete: %v", name, id, err)
			}
		}
		if err := c.client(via).DeleteKey(bg, name); err != nil {
			t.Fatal(err)
		}
		for _, id := range nodeIDs {
			if _, err := c.client(id).GenerateKey(bg, name, nil); !errors.Is(err, client.ErrKeyNotFound) {
				t.Fatalf("%s deleted through %s: generate on %s right after the acknowledgement = %v, want not found", name, via, id, err)
			}
		}
	}
}
