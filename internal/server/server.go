package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api"
	"github.com/keyraft/keyraft/cluster"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/metered"
)

// Options are the run-time inputs that are not in the config file.
type Options struct {
	// Logger is the root logger; components log through named sub-loggers.
	Logger hclog.Logger
	// AuditOut receives the console audit log (default os.Stdout).
	AuditOut io.Writer
	// APIListener and RaftListener, if set, are used instead of binding
	// config.Address and cluster.raft_address (tests pass :0 listeners).
	APIListener, RaftListener net.Listener
	// Store, if set, is used instead of opening config.Keystore.
	Store store.Store
	// Version and Commit are reported by /version.
	Version, Commit string
	// HealthInterval overrides the keystore health-check period (tests).
	HealthInterval time.Duration
	// Dial, if set, opens the cluster connections to peers (tests inject
	// network partitions).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// SnapshotThreshold overrides Raft's entries-per-snapshot (tests).
	SnapshotThreshold uint64
}

// Server is a running Keyraft node.
type Server struct {
	cfg  *config.Config
	log  hclog.Logger
	tls  atomic.Pointer[tls.Certificate]
	ca   atomic.Pointer[tlsPool]
	auth tls.ClientAuthType

	store    store.Store
	keystore *metered.Store // store, counting calls for the metrics
	fsm      *fsm.FSM
	node     *cluster.Node
	svc      *enclave.Service
	api      *api.Server
	auditAPI atomic.Pointer[api.Server] // s.api once it exists, for the enclave service's audit hook
	http     *http.Server
	apiLn    net.Listener
	serveWG  sync.WaitGroup

	identity string   // this node's certificate identity (cluster port)
	trusted  sync.Map // member identities learned when joining, until the FSM has members

	serving     time.Time                 // when the API started serving
	fenced      atomic.Pointer[kes.Error] // non-nil: the node must not serve (see fence)
	decryptOnly atomic.Bool               // cut off from the leader: decrypts only (see fence)
	removedSelf atomic.Bool               // the leader said this node was removed
	stopWatch   context.CancelFunc

	unregisterSink func()
}

// Start brings a node up: it opens the keystore and state, starts Raft
// (bootstrapping a new one-node cluster if cluster.bootstrap is set and
// there is no state), waits for a leader, loads the seal key, syncs the
// config's policies and keys, and serves the KES API. It returns when the
// API is accepting connections.
func Start(ctx context.Context, cfg *config.Config, opts Options) (_ *Server, err error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, log: opts.Logger.Named("server"), auth: cfg.ClientAuth()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.loadTLS(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Cluster.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	if err := checkNotRemoved(cfg.Cluster.DataDir); err != nil {
		return nil, err
	}
	if err := checkState(cfg); err != nil {
		return nil, err
	}
	if s.store = opts.Store; s.store == nil {
		if s.store, err = openStore(ctx, cfg, opts.Logger); err != nil {
			return nil, err
		}
	}
	s.keystore = metered.New(s.store)
	if s.fsm, err = fsm.Open(filepath.Join(cfg.Cluster.DataDir, "fsm.db"), opts.Logger); err != nil {
		return nil, err
	}

	prop := &proposer{}
	s.svc, err = enclave.New(enclave.Config{
		FSM:             s.fsm,
		Store:           s.keystore,
		Proposer:        prop,
		Forwarder:       &forwarder{node: func() *cluster.Node { return s.node }, wait: leaderWait},
		Admin:           cfg.Admin,
		ProtectDeletion: cfg.ProtectDeletion,
		RecoveryWindow:  cfg.RecoveryWindow,
		Rotation:        rotationRules(cfg.Rotation),
		Audit: func(enclave, path, identity string) {
			if a := s.auditAPI.Load(); a != nil {
				a.AuditAction(enclave, path, identity)
			}
		},
		Settle: func(ctx context.Context, index uint64) error { return s.settle(ctx, index) },
		Cache: enclave.CacheConfig{
			Any: cfg.Cache.Any, Unused: cfg.Cache.Unused, Offline: cfg.Cache.Offline,
			HealthInterval: opts.HealthInterval,
		},
		Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}

	if err := s.listenAPI(opts); err != nil {
		return nil, err
	}
	if err := s.startNode(opts); err != nil {
		return nil, err
	}
	prop.node = s.node

	if err := s.joinOrBootstrap(ctx); err != nil {
		return nil, err
	}
	s.svc.Start()

	s.serving = time.Now()
	watchCtx, stop := context.WithCancel(context.Background())
	s.stopWatch = stop
	s.checkFence()
	go s.watchMembership(watchCtx)

	if err := s.serveAPI(opts); err != nil {
		return nil, err
	}
	s.startMemoryGuard(watchCtx, s.api.Registry())
	s.log.Info("keyraft node is serving", "api", s.apiLn.Addr().String(), "raft", s.node.Address(), "id", cfg.Cluster.NodeID)
	return s, nil
}

func waitCtx(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func (s *Server) startNode(opts Options) error {
	ln := opts.RaftListener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Cluster.RaftAddress); err != nil {
			return fmt.Errorf("server: cluster port: %w", err)
		}
	}
	advertise := s.cfg.Cluster.Advertise
	if opts.RaftListener != nil || advertise == "" {
		advertise = ln.Addr().String()
	}
	var err error
	s.node, err = cluster.Start(cluster.Config{
		ID:        s.cfg.Cluster.NodeID,
		DataDir:   s.cfg.Cluster.DataDir,
		Listener:  ln,
		Advertise: advertise,
		TLS:       &tls.Config{GetCertificate: s.getCertificate, MinVersion: tls.VersionTLS12},
		Authorize: s.authorizePeer,
		Bootstrap: s.cfg.Cluster.Bootstrap,
		FSM:       s.fsm,
		RPC:       s.rpcHandler(),
		Dial:      opts.Dial,

		SnapshotThreshold: opts.SnapshotThreshold,
		Logger:            opts.Logger,
		OnFatal: func(err error) {
			s.log.Error("fatal: stopping the node", "error", err)
			os.Exit(3)
		},
	})
	return err
}

// joinOrBootstrap brings the node into its cluster: a node with Raft state
// or bootstrapping waits for a leader; a new node with cluster.join asks
// the members to add it and waits until it has caught up with the
// cluster's seal record. Then it loads the seal key (from the keystore, or
// from a peer) and, on the leader, applies the config.
func (s *Server) joinOrBootstrap(ctx context.Context) error {
	if len(s.cfg.Cluster.Join) > 0 && !s.node.HasState() {
		if err := s.joinCluster(ctx); err != nil {
			return err
		}
	}
	if err := s.node.WaitLeader(waitCtx(ctx, 60*time.Second)); err != nil {
		return err
	}
	if !s.node.IsLeader() {
		if err := s.waitSealRecord(ctx); err != nil {
			return err
		}
	}
	fromPeer := func(ctx context.Context, id string) ([]byte, error) {
		var resp sealResponse
		err := s.node.CallLeader(ctx, leaderWait, rpcSeal, sealRequest{ID: id}, &resp)
		return resp.Key, err
	}
	if !s.node.IsLeader() {
		// A node that was down during a seal rotation must not look for
		// the retired key its stale state names: catch up first.
		if err := s.catchUp(ctx); err != nil {
			return err
		}
	}
	if _, ok := s.fsm.Seal(); ok {
		if err := s.svc.Unseal(ctx, fromPeer); err != nil {
			return err
		}
	} else if err := s.svc.Bootstrap(ctx); err != nil {
		return err
	}
	if s.node.IsLeader() {
		if err := s.registerSelf(ctx); err != nil {
			return err
		}
		return s.applyConfig(ctx)
	}
	return nil
}

// catchUp waits until this node's state has reached the leader's applied
// index at the time of asking (an FSM index: Raft configuration entries
// never reach the FSM, so the commit index may be out of its reach).
func (s *Server) catchUp(ctx context.Context) error {
	var info cluster.Info
	if err := s.node.CallLeader(ctx, leaderWait, rpcInfo, struct{}{}, &info); err != nil {
		s.log.Warn("could not ask the leader how far to catch up; unsealing with the local state", "error", err)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.fsm.WaitApplied(wctx, info.AppliedIndex); err != nil {
		return fmt.Errorf("server: catching up with the leader (index %d): %w", info.AppliedIndex, err)
	}
	return nil
}

// waitSealRecord polls until the replicated state holds the seal record.
func (s *Server) waitSealRecord(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if _, ok := s.fsm.Seal(); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server: waiting to catch up with the cluster: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// applyConfig (leader) replicates the config's policies and creates its
// `keys:` if missing.
func (s *Server) applyConfig(ctx context.Context) error {
	var pols []enclave.ConfigPolicy
	for name, p := range s.cfg.Policies {
		pols = append(pols, enclave.ConfigPolicy{Name: name, Allow: p.Allow, Deny: p.Deny, Identities: p.Identities})
	}
	if err := s.svc.SyncConfigPolicies(ctx, pols); err != nil {
		return fmt.Errorf("server: apply config policies: %w", err)
	}
	for _, name := range s.cfg.Keys {
		err := s.svc.CreateKey(ctx, enclave.DefaultEnclave, name, s.cfg.Admin)
		if err != nil && !errors.Is(err, kes.ErrKeyExists) {
			return fmt.Errorf("server: create key %q from config: %w", name, err)
		}
	}
	return nil
}

// listenAPI binds the API port (unless a listener was given) and fixes the
// advertised API URL when the configured port was 0.
func (s *Server) listenAPI(opts Options) error {
	s.apiLn = opts.APIListener
	if s.apiLn == nil {
		var err error
		if s.apiLn, err = net.Listen("tcp", s.cfg.Address); err != nil {
			return fmt.Errorf("server: API address: %w", err)
		}
	}
	_, port, _ := net.SplitHostPort(s.apiLn.Addr().String())
	adv := s.cfg.Cluster.APIAdvertise
	host := "127.0.0.1"
	if u, err := url.Parse(adv); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if adv == "" || strings.HasSuffix(adv, ":0") {
		s.cfg.Cluster.APIAdvertise = "https://" + net.JoinHostPort(host, port)
	}
	return nil
}

func (s *Server) serveAPI(opts Options) error {
	routes := map[string]api.RouteConfig{}
	for path, r := range s.cfg.API {
		routes[path] = api.RouteConfig{Timeout: r.Timeout, SkipAuth: r.SkipAuth}
	}
	auditOut := opts.AuditOut
	if s.cfg.Log.Audit.Off() {
		auditOut = io.Discard
	}
	var err error
	s.api, err = api.New(api.Config{
		Backend: s.svc, Enclaves: s.svc, Cluster: clusterAPI{s}, Logger: opts.Logger, Routes: routes, AuditOut: auditOut,
		Version: opts.Version, Commit: opts.Commit, Fence: s.fence,
		MaxRequestsPerIdentity: s.cfg.Limits.MaxRequestsPerIdentity,
	})
	if err != nil {
		return err
	}
	s.auditAPI.Store(s.api)
	if err := s.registerMetrics(s.api.Registry()); err != nil {
		return err
	}
	// Error-level logs of every component reach /v1/log/error subscribers.
	if il, ok := opts.Logger.(hclog.InterceptLogger); ok {
		sink := hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: hclog.Error, Output: s.api.ErrorLogWriter()})
		il.RegisterSink(sink)
		s.unregisterSink = func() { il.DeregisterSink(sink) }
	}
	hs, err := api.NewHTTPServer(s.api, &tls.Config{GetConfigForClient: s.apiTLSConfig})
	if err != nil {
		return err
	}
	s.http = hs
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if err := s.http.ServeTLS(s.limitedListener(), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "error", err)
		}
	}()
	return nil
}

// Addr returns the API listener's address.
func (s *Server) Addr() net.Addr { return s.apiLn.Addr() }

// Node returns the Raft node.
func (s *Server) Node() *cluster.Node { return s.node }

// FSM returns the replicated state.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Service returns the enclave service.
func (s *Server) Service() *enclave.Service { return s.svc }

// API returns the HTTP API server (for its metrics registry and logs).
func (s *Server) API() *api.Server { return s.api }

// Close stops serving and releases everything, leaving the cluster
// gracefully (leadership transfer) if this node leads. Safe to call on a
// partly started Server.
func (s *Server) Close() error {
	var errs []error
	if s.unregisterSink != nil {
		s.unregisterSink()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.http == nil && s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
		}
		cancel()
		s.serveWG.Wait()
	}
	if s.svc != nil {
		errs = append(errs, s.svc.Close())
	}
	if s.node != nil {
		errs = append(errs, s.node.Shutdown())
	}
	if s.fsm != nil {
		errs = append(errs, s.fsm.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// proposer adapts *cluster.Node to enclave.Proposer, mapping
// cluster.ErrNotLeader to enclave.ErrNotLeader.
type proposer struct{ node *cluster.Node }

func (p *proposer) Apply(ctx context.Context, cmd fsm.Command) (uint64, error) {
	if p.node == nil {
		return 0, enclave.ErrNotLeader
	}
	idx, err := p.node.Apply(ctx, cmd)
	if errors.Is(err, cluster.ErrNotLeader) {
		return 0, fmt.Errorf("%w: %w", enclave.ErrNotLeader, err)
	}
	return idx, err
}

func (p *proposer) IsLeader() bool { return p.node != nil && p.node.IsLeader() }

// Reload applies a re-read config file (SIGHUP): new TLS certificate and
// CA pool for new connections, and the config's policies (replicated by
// the leader). Other settings need a restart. On error the node keeps its
// previous TLS material.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	s.cfg.TLS = cfg.TLS
	if err := s.loadTLS(); err != nil {
		return err
	}
	s.cfg.Policies = cfg.Policies
	s.cfg.Keys = cfg.Keys
	if s.node.IsLeader() {
		return s.applyConfig(ctx)
	}
	return nil
}

// rotationRules converts the config's rotation section.
func rotationRules(rules []config.RotationRule) []enclave.RotationRule {
	out := make([]enclave.RotationRule, len(rules))
	for i, r := range rules {
		out[i] = enclave.RotationRule{Keys: r.Keys, Every: r.Every}
	}
	return out
}
