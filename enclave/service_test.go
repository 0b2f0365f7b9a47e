package enclave

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/crypto"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/mem"
)

// localProposer applies commands straight to the FSM, as a one-node Raft
// would, so the domain logic can be tested without Raft.
type localProposer struct {
	mu     sync.Mutex
	f      *fsm.FSM
	index  uint64
	leader bool
}

func (p *localProposer) Apply(_ context.Context, cmd fsm.Command) (uint64, error) {
	if !p.leader {
		return 0, ErrNotLeader
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	res, fatal := p.f.Apply(p.index, b)
	if fatal != nil {
		return 0, fatal
	}
	return p.index, res
}

func (p *localProposer) IsLeader() bool { return p.leader }

const admin = "0000000000000000000000000000000000000000000000000000000000000a11"

func newTestService(t *testing.T) (*Service, *mem.Store, *fsm.FSM) {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st := mem.New()
	s, err := New(Config{FSM: f, Store: st, Proposer: &localProposer{f: f, leader: true}, Admin: admin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, st, f
}

func TestKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k1", admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "k1", admin); !errors.Is(err, kes.ErrKeyExists) {
		t.Fatalf("create twice: %v", err)
	}
	info, err := s.DescribeKey(ctx, DefaultEnclave, "k1")
	if err != nil || info.CreatedBy != admin || info.Name != "k1" {
		t.Fatalf("describe: %+v %v", info, err)
	}
	// The keystore holds KES's format; the FSM only sealed material.
	stored, err := st.Get(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	kv, err := crypto.ParseKeyVersion(stored)
	if err != nil {
		t.Fatalf("keystore value is not a KES key: %v", err)
	}
	rec, _ := f.Key(DefaultEnclave, "k1")
	if bytes.Contains(rec.Sealed, kv.Key.Key[:]) || bytes.Contains(rec.Sealed, stored) {
		t.Fatal("FSM record holds plaintext key material")
	}

	st.ResetCalls()
	for i := 0; i < 100; i++ {
		dek, ct, err := s.GenerateKey(ctx, DefaultEnclave, "k1", []byte("ctx"))
		if err != nil || len(dek) != 32 {
			t.Fatal(err)
		}
		pt, err := s.Decrypt(ctx, DefaultEnclave, "k1", ct, []byte("ctx"))
		if err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("decrypt: %v", err)
		}
		// The ciphertext is KES's: the keystore key decrypts it too.
		if pt, err := kv.Decrypt(ct, []byte("ctx")); err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("KES key cannot decrypt: %v", err)
		}
	}
	if c := st.Calls(); c.Total() != 0 {
		t.Fatalf("hot path called the keystore: %+v", c)
	}
	_, ct, _ := s.GenerateKey(ctx, DefaultEnclave, "k1", []byte("a"))
	if _, err := s.Decrypt(ctx, DefaultEnclave, "k1", ct, []byte("b")); !errors.Is(err, kes.ErrDecrypt) {
		t.Fatalf("wrong context: %v", err)
	}
	mac, err := s.HMAC(ctx, DefaultEnclave, "k1", []byte("msg"), 0)
	if err != nil || !bytes.Equal(mac, kv.HMAC.Sum([]byte("msg"))) {
		t.Fatalf("hmac: %v", err)
	}

	names, next, err := s.ListKeys(ctx, DefaultEnclave, "", "")
	if err != nil || len(names) != 1 || names[0] != "k1" || next != "" {
		t.Fatalf("list = %v %q %v (the seal entry must be hidden)", names, next, err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "k1", admin); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k1", nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("generate after delete: %v", err)
	}
	if err := s.DeleteKey(ctx, DefaultEnclave, "k1", admin); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestKeyCreatedByKESIsLoadedOnce(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	kv, err := crypto.NewKeyVersion(crypto.AES256, "kes-identity", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := crypto.EncodeKeyVersion(kv)
	if err := st.Create(ctx, "from-kes", v); err != nil {
		t.Fatal(err)
	}
	ct, _ := kv.Encrypt([]byte("secret"), nil)
	st.ResetCalls()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pt, err := s.Decrypt(ctx, DefaultEnclave, "from-kes", ct, nil); err != nil || string(pt) != "secret" {
				t.Errorf("decrypt: %q %v", pt, err)
			}
		}()
	}
	wg.Wait()
	if c := st.Calls(); c.Get != 1 {
		t.Fatalf("keystore reads = %d, want 1", c.Get)
	}
	info, _ := s.DescribeKey(ctx, DefaultEnclave, "from-kes")
	if info.CreatedBy != "kes-identity" || !info.CreatedAt.Equal(kv.CreatedAt) {
		t.Fatalf("describe = %+v", info)
	}
}

func TestImportAndLegacyKey(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	if err := s.ImportKey(ctx, DefaultEnclave, "imp", make([]byte, 16), "AES256", admin); err == nil || err.(kes.Error).Code != 406 {
		t.Fatalf("short key: %v", err)
	}
	if err := s.ImportKey(ctx, DefaultEnclave, "imp", make([]byte, 32), "", admin); err == nil || err.Error() != "algorithm '' is not supported" {
		t.Fatalf("empty cipher: %v", err)
	}
	if err := s.ImportKey(ctx, DefaultEnclave, "imp", bytes.Repeat([]byte{7}, 32), "ChaCha20", admin); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "imp"); info.Algorithm != "ChaCha20" {
		t.Fatalf("algorithm = %q", info.Algorithm)
	}
	legacy := []byte(`{"bytes":"` + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" + `"}`)
	if err := st.Create(ctx, "legacy", legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HMAC(ctx, DefaultEnclave, "legacy", []byte("m"), 0); err == nil || err.(kes.Error).Code != 409 {
		t.Fatalf("hmac on legacy key: %v", err)
	}
}

func TestAuthorize(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	const minio = "1111111111111111111111111111111111111111111111111111111111111111"
	err := s.SyncConfigPolicies(ctx, []ConfigPolicy{{
		Name:       "minio",
		Allow:      []string{"/v1/key/create/*", "/v1/key/generate/*", "/v1/key/decrypt/*"},
		Deny:       []string{"/v1/key/generate/secret-*"},
		Identities: []string{minio},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, path string
		ok       bool
	}{
		{admin, "/v1/key/delete/x", true},
		{minio, "/v1/key/create/x", true},
		{minio, "/v1/key/generate/x", true},
		{minio, "/v1/key/generate/secret-x", false},
		{minio, "/v1/key/delete/x", false},
		{"2222222222222222222222222222222222222222222222222222222222222222", "/v1/key/create/x", false},
	} {
		err := s.Authorize(ctx, DefaultEnclave, tc.id, tc.path)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, kes.ErrNotAllowed)) {
			t.Errorf("Authorize(%s, %s) = %v, want ok=%v", tc.id[:4], tc.path, err, tc.ok)
		}
	}
	self, err := s.SelfDescribe(ctx, DefaultEnclave, minio)
	if err != nil || self.Policy != "minio" || self.PolicyRules == nil || len(self.PolicyRules.Allow) != 3 {
		t.Fatalf("self describe: %+v %v", self, err)
	}
	ids, _ := s.ListIdentities(ctx, DefaultEnclave, "")
	if len(ids) != 2 {
		t.Fatalf("identities = %v", ids)
	}
}

func TestOfflineServesCachedKeys(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	if err := s.CreateKey(ctx, DefaultEnclave, "k", admin); err != nil {
		t.Fatal(err)
	}
	st.SetUnreachable(true)
	s.checkHealth(ctx)
	if _, err := s.KeystoreStatus(ctx); !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("status while offline: %v", err)
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err != nil {
		t.Fatalf("cached key while offline: %v", err)
	}
	if err := s.CreateKey(ctx, DefaultEnclave, "new", admin); err == nil || err.(kes.Error).Code != 502 {
		t.Fatalf("create while offline: %v", err)
	}
	// One failed listing evicts nothing, however long ago the last good
	// one was; with offline=0 a second failure more than `any` after the
	// last good listing drops the cache.
	clock := time.Now()
	s.now = func() time.Time { return clock }
	s.cfg.Cache.Any = time.Minute
	s.revalidate(ctx)
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err != nil {
		t.Fatalf("one failed listing evicted the key: %v", err)
	}
	clock = clock.Add(s.cfg.Cache.Any / 2)
	s.revalidate(ctx)
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err != nil {
		t.Fatalf("key dropped within max(any, offline) of the last listing: %v", err)
	}
	clock = clock.Add(s.cfg.Cache.Any)
	s.revalidate(ctx)
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err == nil {
		t.Fatal("key served after the cache was dropped")
	}
	st.SetUnreachable(false)
	s.revalidate(ctx) // a successful revalidation also proves the keystore is back
	if s.Offline() {
		t.Fatal("still offline after a successful revalidation")
	}
	if _, _, err := s.GenerateKey(ctx, DefaultEnclave, "k", nil); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestRevalidateEvictsDeletedKeys(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	s.CreateKey(ctx, DefaultEnclave, "a", admin)
	s.CreateKey(ctx, DefaultEnclave, "b", admin)
	if err := st.Delete(ctx, "a"); err != nil { // removed behind Keyraft's back
		t.Fatal(err)
	}
	st.ResetCalls()
	s.revalidate(ctx)
	if c := st.Calls(); c.List != 1 || c.Total() != 1 {
		t.Fatalf("revalidation calls = %+v, want one List", c)
	}
	if _, ok := f.Key(DefaultEnclave, "a"); ok {
		t.Fatal("deleted key still cached")
	}
	if _, ok := f.Key(DefaultEnclave, "b"); !ok {
		t.Fatal("live key evicted")
	}
}

func TestWrongSealKeyRejected(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	if err := st.Delete(ctx, SealName); err != nil {
		t.Fatal(err)
	}
	st.Create(ctx, SealName, bytes.Repeat([]byte{1}, 32))
	if err := s.Unseal(ctx, nil); !errors.Is(err, ErrWrongSealKey) {
		t.Fatalf("unseal with another key: %v", err)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/key/create/*", "/v1/key/create/my-key", true},
		{"/v1/key/create/*", "/v1/key/create/", true},
		{"/v1/key/create/minio-*", "/v1/key/create/other", false},
		{"/v1/status", "/v1/status", true},
		{"/v1/status", "/v1/status/", false},
		{"", "/v1/status", false},
		{"/v1/key/*", "/v1/key/create/a", true}, // trailing star spans '/'
		{"/v1/key/*/my-*", "/v1/key/create/my-key", true},
		{"/v1/key/*/my-*", "/v1/key/create/other", false},
		{"/v1/key/generate/?", "/v1/key/generate/a", true},
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	p := Policy{Allow: []string{"/v1/key/*"}, Deny: []string{"/v1/key/delete/*"}}
	if !p.Verify("/v1/key/create/a") || p.Verify("/v1/key/delete/a") || p.Verify("/v1/status") {
		t.Fatal("deny-first default-deny violated")
	}
	if (&Policy{}).Verify("/v1/status") {
		t.Fatal("empty policy allowed a request")
	}
}

func TestValidName(t *testing.T) {
	valid := []string{"my-key", "0", "_-___---_", "_0", "A_b-C"}
	invalid := []string{"", "my.key", "key/", "-a", "a-", "_", "ключ", string(make([]byte, 81)), "a b", "*"}
	for _, n := range valid {
		if !ValidName(n) {
			t.Errorf("ValidName(%q) = false", n)
		}
	}
	for _, n := range invalid {
		if ValidName(n) {
			t.Errorf("ValidName(%q) = true", n)
		}
	}
	long := bytes.Repeat([]byte("a"), 80)
	if !ValidName(string(long)) || ValidName(string(long)+"a") {
		t.Error("80/81 byte boundary")
	}
	for p, want := range map[string]bool{"": true, "*": true, "my-*": true, "my": true, "*-*": false, "a.b*": false, "a**": false} {
		if ValidPattern(p) != want {
			t.Errorf("ValidPattern(%q) != %v", p, want)
		}
	}
}
