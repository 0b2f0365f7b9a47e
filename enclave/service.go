package enclave

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
)

// Proposer replicates commands; *cluster.Node satisfies it.
type Proposer interface {
	// Apply proposes cmd and waits until this node applied it. It returns
	// the Raft index and the command's result (fsm.ErrExists, ...), or an
	// error wrapping ErrNotLeader on a follower.
	Apply(ctx context.Context, cmd fsm.Command) (uint64, error)
	// IsLeader reports whether this node is the leader.
	IsLeader() bool
}

// ErrNotLeader is what a Proposer's error wraps when it is not the leader.
// cmd maps cluster.ErrNotLeader onto it.
var ErrNotLeader = errors.New("enclave: not the leader")

// Forwarder sends an operation that must run on the leader to the leader
// and returns its encoded result. Followers use it for writes and for
// loading keys that are not cached yet.
type Forwarder interface {
	Forward(ctx context.Context, op Op) (Result, error)
}

// CacheConfig is the cache policy (config cache.expiry.*). There are two
// layers: the sealed records in the FSM (the cluster's cache of the
// keystore) and each node's unsealed (plaintext) copies.
type CacheConfig struct {
	// Any is how often the leader revalidates the sealed keys against the
	// keystore (0 disables revalidation), and the longest an unsealed copy
	// lives on a node (0: no bound).
	Any time.Duration
	// Unused drops a node's unsealed copy of a key that node has not used
	// for this long (0 disables). The sealed record stays.
	Unused time.Duration
	// Offline is how long the sealed keys keep serving after the last
	// successful revalidation while the keystore is unreachable, if longer
	// than Any.
	Offline time.Duration
	// HealthInterval is how often the keystore's health is checked
	// (default 10s, like KES).
	HealthInterval time.Duration
	// ProbeInterval is how often an offline keystore is tried again, by
	// the health check and by at most one request (default 1s).
	ProbeInterval time.Duration
}

// Config configures a Service.
type Config struct {
	FSM       *fsm.FSM
	Store     store.Store
	Proposer  Proposer
	Forwarder Forwarder // nil on a cluster that never has followers
	// Admin is the identity that may do everything. A value that is not a
	// valid identity (e.g. "disabled") disables admin access.
	Admin string
	// Settle, if set, is called by the leader after a key or enclave
	// delete was applied at index and before it is acknowledged: it waits
	// until the other members applied it too, so that no node in contact
	// with the leader serves the deleted key afterwards. Its error is
	// logged, not returned to the client (the delete happened).
	Settle func(ctx context.Context, index uint64) error
	// ProtectDeletion lists the key name patterns (policy syntax) whose
	// keys are protected from deletion when they are created.
	ProtectDeletion []string
	// RecoveryWindow, if positive, is how long a deleted key stays
	// restorable before the leader purges it (see deletion.go); 0 deletes
	// at once, as KES does.
	RecoveryWindow time.Duration
	// Rotation lists scheduled key rotations (see schedule.go).
	Rotation []RotationRule
	// Audit, if set, records an action the cluster takes on its own (a
	// purge at the end of a recovery window) in the audit log, as the API
	// records requests.
	Audit  func(enclave, path, identity string)
	Cache  CacheConfig
	Logger hclog.Logger
	// Now returns the current time (tests); default time.Now.
	Now func() time.Time
}

// Service implements the KES API's domain (api.Backend). All methods are
// safe for concurrent use.
//
// On the leader, creating or importing a key in an enclave is serialized
// with deleting and creating that enclave (see enclaveLocks): a key whose
// create was acknowledged is deleted with its enclave, and a re-created
// enclave starts with an empty keystore namespace.
type Service struct {
	cfg Config
	log hclog.Logger
	now func() time.Time

	// seal is the seal key new records are sealed with (the next one on
	// the leader during a rotation); ring holds every seal key this node
	// knows, by fingerprint.
	seal      atomic.Pointer[sealer]
	ring      sealRing
	sealLoads singleflight.Group // loadSeal: one load per seal key
	sealSync  sync.Mutex         // serializes syncSeals
	fromPeer  atomic.Pointer[SealFromPeer]
	rotating  atomic.Bool // the leader is re-sealing (sealrotate.go)

	cache   *keyCache
	loading singleflight.Group // loadKey: one load request per key per node
	reads   singleflight.Group // execLoadKey: one keystore read per key on the leader
	locks   enclaveLocks       // leader: key creates vs. enclave create and delete

	deletions sync.Mutex // leader: restores vs. purges of pending deletions

	reconciling singleflight.Group // one reconciliation of restored keys at a time (reconcile.go)

	offline   atomic.Bool
	offlineAt atomic.Int64 // unix nanos of the first failed health check
	lastTrial atomic.Int64 // unix nanos of the last call allowKeystore let through while offline

	unseals atomic.Uint64 // FSM records unsealed on this node

	// lastListed is when the leader last revalidated the sealed keys
	// against a keystore listing (unix nanos; 0: not yet, counted from the
	// first attempt), failedListings how many revalidations have failed
	// since (see revalidate).
	lastListed     atomic.Int64
	failedListings atomic.Int32
	lastErr        atomic.Pointer[error]
	latency        atomic.Int64

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New returns a Service. Call Unseal (or Bootstrap on a new cluster) before
// serving key requests, and Start to run the background cache loops.
func New(cfg Config) (*Service, error) {
	if cfg.FSM == nil || cfg.Store == nil || cfg.Proposer == nil {
		return nil, errors.New("enclave: FSM, Store and Proposer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cache.HealthInterval <= 0 {
		cfg.Cache.HealthInterval = 10 * time.Second
	}
	if cfg.Cache.ProbeInterval <= 0 {
		cfg.Cache.ProbeInterval = time.Second
	}
	s := &Service{
		cfg:   cfg,
		log:   cfg.Logger.Named("enclave"),
		now:   cfg.Now,
		cache: newKeyCache(),
		stop:  make(chan struct{}),
	}
	cfg.FSM.Subscribe(s.onEvent)
	return s, nil
}

// Close stops the background loops and zeroes the unsealed keys.
func (s *Service) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	s.cache.clear()
	s.seal.Store(nil)
	s.ring.clear()
	return nil
}

func (s *Service) onEvent(e fsm.Event) {
	switch e.Kind {
	case fsm.KeyRemoved, fsm.KeyPut:
		s.cache.evict(e.Enclave, e.Name)
	case fsm.EnclaveDeleted:
		s.cache.evictEnclave(e.Enclave)
	case fsm.StateRestored:
		s.cache.clear()  // unsealed entries of the replaced state
		go s.syncSeals() // a snapshot may end (or begin) a rotation
	case fsm.SealChanged:
		go s.syncSeals() // may read the keystore: not in Apply's goroutine
	}
}

// settle runs Config.Settle, if set, after a delete applied at index.
func (s *Service) settle(ctx context.Context, index uint64) {
	if s.cfg.Settle == nil || index == 0 {
		return
	}
	if err := s.cfg.Settle(ctx, index); err != nil {
		s.log.Warn("could not confirm that every member applied a delete", "index", index, "error", err)
	}
}

// enclaveNames returns the names of every enclave: the default one first,
// then those the FSM records.
func (s *Service) enclaveNames() []string {
	enclaves := []string{DefaultEnclave}
	for _, e := range s.cfg.FSM.Enclaves() {
		enclaves = append(enclaves, e.Name)
	}
	return enclaves
}

// isAdmin compares in constant time.
func (s *Service) isAdmin(identity string) bool {
	return s.cfg.Admin != "" && subtle.ConstantTimeCompare([]byte(identity), []byte(s.cfg.Admin)) == 1
}

// enclaveExists returns kes.ErrEnclaveNotFound for unknown enclaves. The
// default enclave always exists.
func (s *Service) enclaveExists(name string) error {
	if name == DefaultEnclave {
		return nil
	}
	if _, ok := s.cfg.FSM.Enclave(name); !ok {
		return kes.ErrEnclaveNotFound
	}
	return nil
}

// propose applies a command on the leader. It maps "not the leader" to a
// 503 so a client retries (MinIO retries 503 on the same node).
func (s *Service) propose(ctx context.Context, cmd fsm.Command) (uint64, error) {
	idx, err := s.cfg.Proposer.Apply(ctx, cmd)
	if errors.Is(err, ErrNotLeader) {
		return 0, errUnavailable
	}
	return idx, err
}

var errUnavailable = kes.Error{Code: 503, Message: "cluster has no leader: try again"}

func internal(format string, args ...any) error { return fmt.Errorf("enclave: "+format, args...) }

// CacheStats describes this node's cache.
type CacheStats struct {
	// Unsealed is how many keys this node holds unsealed (plaintext).
	Unsealed int
	// Unseals counts the FSM records this node unsealed since it started.
	Unseals uint64
}

// CacheStats returns this node's cache figures. Safe for concurrent use.
func (s *Service) CacheStats() CacheStats {
	return CacheStats{Unsealed: s.cache.len(), Unseals: s.unseals.Load()}
}
