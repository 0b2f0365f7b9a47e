package systemtest

import (
	"context"
	"testing"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/store"
)

type configPolicy = config.Policy

func identityKey(t *testing.T) (identity.APIKey, string) {
	t.Helper()
	k, err := identity.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, k.Identity()
}

// downStore is a keystore that cannot be reached.
type downStore struct{}

func (downStore) Create(context.Context, string, []byte) error { return store.ErrUnreachable }
func (downStore) Get(context.Context, string) ([]byte, error)  { return nil, store.ErrUnreachable }
func (downStore) Delete(context.Context, string) error         { return store.ErrUnreachable }
func (downStore) List(context.Context, string) ([]string, error) {
	return nil, store.ErrUnreachable
}
func (downStore) Status(context.Context) (store.State, error) {
	return store.State{}, store.ErrUnreachable
}
func (downStore) Close() error { return nil }
