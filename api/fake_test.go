package api

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// fakeBackend is an in-memory Backend for the HTTP tests. It authorizes
// with the real enclave.Policy.Verify, encrypts with AES-256-GCM, and can be
// told to fail: forced[name] is returned by every operation on key (or
// listing prefix) name.
type fakeBackend struct {
	mu        sync.Mutex
	admin     string
	started   time.Time
	enclaves  map[string]*fakeEnclave
	forced    map[string]error
	pageSize  int
	statusLat time.Duration
	statusErr error

	// observations
	lastEnclave  string
	lastIdentity string
	lastPrefix   string
	lastContinue string
	deadlines    map[string]time.Duration // key name → remaining time at call
}

type fakeEnclave struct {
	keys       map[string]*fakeKey
	policies   map[string]*enclave.Policy
	identities map[string]string // identity → policy name
}

type fakeKey struct {
	info    enclave.KeyInfo
	aead    cipher.AEAD
	hmacKey []byte
}

func newFakeBackend(admin string, enclaves ...string) *fakeBackend {
	b := &fakeBackend{
		admin:     admin,
		started:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		enclaves:  map[string]*fakeEnclave{},
		forced:    map[string]error{},
		pageSize:  1024,
		statusLat: 3 * time.Millisecond,
		deadlines: map[string]time.Duration{},
	}
	for _, e := range append([]string{enclave.DefaultEnclave}, enclaves...) {
		b.enclaves[e] = &fakeEnclave{keys: map[string]*fakeKey{}, policies: map[string]*enclave.Policy{}, identities: map[string]string{}}
	}
	return b
}

// setPolicy creates (or replaces) a policy and assigns it to identities.
func (b *fakeBackend) setPolicy(enc, name string, allow, deny []string, ids ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.enclaves[enc]
	e.policies[name] = &enclave.Policy{Allow: allow, Deny: deny, CreatedAt: b.started, CreatedBy: b.admin}
	for _, id := range ids {
		e.identities[id] = name
	}
}

// deadline returns the time left until the context deadline of the last
// call for name (0 if it had none).
func (b *fakeBackend) deadline(name string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deadlines[name]
}

func (b *fakeBackend) force(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forced[name] = err
}

func (b *fakeBackend) seen() (enc, identity string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastEnclave, b.lastIdentity
}

// enter locks b, records the call and returns the enclave (or an error).
// The caller must unlock.
func (b *fakeBackend) enter(ctx context.Context, enc, name string) (*fakeEnclave, error) {
	b.mu.Lock()
	b.lastEnclave = enc
	if dl, ok := ctx.Deadline(); ok && name != "" {
		b.deadlines[name] = time.Until(dl)
	}
	if err := b.forced[name]; err != nil {
		return nil, err
	}
	e := b.enclaves[enc]
	if e == nil {
		return nil, kes.ErrEnclaveNotFound
	}
	return e, nil
}

func (b *fakeBackend) key(ctx context.Context, enc, name string) (*fakeKey, error) {
	e, err := b.enter(ctx, enc, name)
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	k := e.keys[name]
	if k == nil {
		return nil, kes.ErrKeyNotFound
	}
	return k, nil
}

func (b *fakeBackend) Authorize(_ context.Context, enc, identity, path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastEnclave, b.lastIdentity = enc, identity
	if identity == b.admin {
		return nil
	}
	e := b.enclaves[enc]
	if e == nil {
		return kes.ErrNotAllowed
	}
	p := e.policies[e.identities[identity]]
	if p == nil || !p.Verify(path) {
		return kes.ErrNotAllowed
	}
	return nil
}

func newFakeKey(secret []byte, algorithm, identity string, withHMAC bool) (*fakeKey, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &fakeKey{info: enclave.KeyInfo{Algorithm: algorithm, CreatedAt: time.Now().UTC(), CreatedBy: identity}, aead: aead}
	if withHMAC {
		k.hmacKey = make([]byte, 32)
		_, _ = rand.Read(k.hmacKey)
	}
	return k, nil
}

func (b *fakeBackend) CreateKey(ctx context.Context, enc, name, identity string) error {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return b.ImportKey(ctx, enc, name, secret, "AES256", identity)
}

func (b *fakeBackend) ImportKey(ctx context.Context, enc, name string, key []byte, cipherName, identity string) error {
	e, err := b.enter(ctx, enc, name)
	defer b.mu.Unlock()
	if err != nil {
		return err
	}
	if cipherName != "AES256" && cipherName != "ChaCha20" {
		return kes.NewError(http.StatusNotAcceptable, "algorithm '%s' is not supported", cipherName)
	}
	if len(key) != 32 {
		return kes.NewError(http.StatusNotAcceptable, "invalid key size for '%s'", cipherName)
	}
	if e.keys[name] != nil {
		return kes.ErrKeyExists
	}
	k, err := newFakeKey(key, cipherName, identity, !strings.HasPrefix(name, "legacy"))
	if err != nil {
		return err
	}
	k.info.Name = name
	e.keys[name] = k
	return nil
}

func (b *fakeBackend) DescribeKey(ctx context.Context, enc, name string) (enclave.KeyInfo, error) {
	k, err := b.key(ctx, enc, name)
	if err != nil {
		return enclave.KeyInfo{}, err
	}
	return k.info, nil
}

func (b *fakeBackend) ListKeys(ctx context.Context, enc, prefix, continueAt string) ([]string, string, error) {
	e, err := b.enter(ctx, enc, prefix)
	defer b.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	b.lastPrefix, b.lastContinue = prefix, continueAt
	var names []string
	for n := range e.keys {
		if strings.HasPrefix(n, prefix) && n > continueAt {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) > b.pageSize {
		names = names[:b.pageSize]
		return names, names[len(names)-1], nil
	}
	return names, "", nil
}

func (b *fakeBackend) SetKeyProtection(context.Context, string, string, bool, string) error {
	return kes.NewError(501, "not implemented")
}

func (b *fakeBackend) RotateKey(context.Context, string, string, string) (int, error) {
	return 0, kes.NewError(501, "not implemented")
}

func (b *fakeBackend) SetMinVersion(context.Context, string, string, int, string) error {
	return kes.NewError(501, "not implemented")
}

func (b *fakeBackend) DestroyVersion(context.Context, string, string, int, string) error {
	return kes.NewError(501, "not implemented")
}

func (b *fakeBackend) Rewrap(context.Context, string, string, []byte, []byte) ([]byte, error) {
	return nil, kes.NewError(501, "not implemented")
}

func (b *fakeBackend) DeletedKeys(string, string) ([]enclave.PendingDeletion, error) {
	return nil, kes.NewError(501, "not implemented")
}

func (b *fakeBackend) RestoreKey(context.Context, string, string, string) error {
	return kes.NewError(501, "not implemented")
}

func (b *fakeBackend) PurgeKey(context.Context, string, string, string) error {
	return kes.NewError(501, "not implemented")
}

func (b *fakeBackend) DeleteKey(ctx context.Context, enc, name, _ string) error {
	e, err := b.enter(ctx, enc, name)
	defer b.mu.Unlock()
	if err != nil {
		return err
	}
	if e.keys[name] == nil {
		return kes.ErrKeyNotFound
	}
	delete(e.keys, name)
	return nil
}

func (b *fakeBackend) GenerateKey(ctx context.Context, enc, name string, ad []byte) ([]byte, []byte, error) {
	plaintext := make([]byte, 32)
	_, _ = rand.Read(plaintext)
	ciphertext, err := b.Encrypt(ctx, enc, name, plaintext, ad)
	if err != nil {
		return nil, nil, err
	}
	return plaintext, ciphertext, nil
}

func (b *fakeBackend) Encrypt(ctx context.Context, enc, name string, plaintext, ad []byte) ([]byte, error) {
	k, err := b.key(ctx, enc, name)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (b *fakeBackend) Decrypt(ctx context.Context, enc, name string, ciphertext, ad []byte) ([]byte, error) {
	k, err := b.key(ctx, enc, name)
	if err != nil {
		return nil, err
	}
	n := k.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, kes.ErrDecrypt
	}
	p, err := k.aead.Open(nil, ciphertext[:n], ciphertext[n:], ad)
	if err != nil {
		return nil, kes.ErrDecrypt
	}
	return p, nil
}

func (b *fakeBackend) HMAC(ctx context.Context, enc, name string, msg []byte, _ int) ([]byte, error) {
	k, err := b.key(ctx, enc, name)
	if err != nil {
		return nil, err
	}
	if k.hmacKey == nil {
		return nil, kes.NewError(http.StatusConflict, "key does not support HMAC")
	}
	m := hmac.New(sha256.New, k.hmacKey)
	m.Write(msg)
	return m.Sum(nil), nil
}

func (b *fakeBackend) DescribePolicy(ctx context.Context, enc, name string) (enclave.PolicyInfo, error) {
	p, err := b.ReadPolicy(ctx, enc, name)
	if err != nil {
		return enclave.PolicyInfo{}, err
	}
	return enclave.PolicyInfo{Name: name, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy}, nil
}

func (b *fakeBackend) ReadPolicy(ctx context.Context, enc, name string) (enclave.Policy, error) {
	e, err := b.enter(ctx, enc, name)
	defer b.mu.Unlock()
	if err != nil {
		return enclave.Policy{}, err
	}
	p := e.policies[name]
	if p == nil {
		return enclave.Policy{}, kes.ErrPolicyNotFound
	}
	return *p, nil
}

func (b *fakeBackend) ListPolicies(ctx context.Context, enc, prefix string) ([]string, error) {
	e, err := b.enter(ctx, enc, prefix)
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	b.lastPrefix = prefix
	var names []string
	for n := range e.policies {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (b *fakeBackend) DescribeIdentity(ctx context.Context, enc, id string) (enclave.IdentityInfo, error) {
	e, err := b.enter(ctx, enc, id)
	defer b.mu.Unlock()
	if err != nil {
		return enclave.IdentityInfo{}, err
	}
	if id == b.admin {
		return enclave.IdentityInfo{Identity: id, IsAdmin: true, CreatedAt: b.started}, nil
	}
	p, ok := e.identities[id]
	if !ok {
		return enclave.IdentityInfo{}, kes.ErrIdentityNotFound
	}
	return enclave.IdentityInfo{Identity: id, Policy: p, CreatedAt: b.started, CreatedBy: b.admin}, nil
}

func (b *fakeBackend) ListIdentities(ctx context.Context, enc, prefix string) ([]string, error) {
	e, err := b.enter(ctx, enc, prefix)
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	b.lastPrefix = prefix
	var ids []string
	if strings.HasPrefix(b.admin, prefix) {
		ids = append(ids, b.admin)
	}
	for id := range e.identities {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (b *fakeBackend) SelfDescribe(ctx context.Context, enc, id string) (enclave.SelfInfo, error) {
	info, err := b.DescribeIdentity(ctx, enc, id)
	if err != nil || info.IsAdmin {
		return enclave.SelfInfo{IdentityInfo: info}, err
	}
	p, err := b.ReadPolicy(ctx, enc, info.Policy)
	if err != nil {
		return enclave.SelfInfo{}, err
	}
	return enclave.SelfInfo{IdentityInfo: info, PolicyRules: &p}, nil
}

func (b *fakeBackend) KeystoreStatus(context.Context) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.statusLat, b.statusErr
}

var _ Backend = (*fakeBackend)(nil)
