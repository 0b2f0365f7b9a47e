package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/keyraft/keyraft/fsm"
)

// Errors returned by Node methods.
var (
	// ErrNotLeader is returned by Apply and membership changes on a node
	// that is not the leader.
	ErrNotLeader = errors.New("cluster: node is not the leader")
	// ErrNoLeader is returned when no leader is known.
	ErrNoLeader = errors.New("cluster: no leader")
)

// Config configures a Node.
type Config struct {
	// ID is the node's stable, unique Raft server id.
	ID string
	// DataDir holds raft.db (log and stable store), snapshots/ and fsm.db.
	DataDir string
	// Listener is the cluster port, already bound (so tests can use :0).
	Listener net.Listener
	// Advertise is the address other members dial; default Listener.Addr().
	Advertise string
	// TLS is the node's TLS configuration for both accepting and dialing:
	// it must carry the node's certificate (Certificates or
	// GetCertificate). Client auth and verification are set by the node.
	TLS *tls.Config
	// Authorize decides whether a peer certificate identity (hex SHA-256 of
	// its public key) may talk on the cluster port. Required. It is asked
	// when a connection is opened (either way), before every RPC request,
	// and for every open connection when Revoke is called, so it must
	// reflect the current membership and be safe for concurrent use.
	Authorize func(identity string) bool
	// Bootstrap makes a node with no Raft state form a new one-node cluster.
	Bootstrap bool
	// FSM is the state machine the node replicates.
	FSM *fsm.FSM
	// RPC serves the cluster RPC channel (forwarded writes, joins).
	RPC http.Handler
	// Logger is the parent logger; the node logs as "cluster" and "raft".
	Logger hclog.Logger
	// OnFatal is called when the FSM reports a fatal apply error. The
	// default panics: a replica that skips a command diverges.
	OnFatal func(error)
	// Dial, if set, opens the TCP connections to peers (tests inject
	// network faults here). Default: net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// SnapshotThreshold overrides Raft's log-entries-per-snapshot (tests).
	SnapshotThreshold uint64
}

// Node is one member of the Raft group. All methods are safe for
// concurrent use.
type Node struct {
	cfg       Config
	log       hclog.Logger
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	mux       *mux
	conns     *registry
	rpcServer *http.Server
	rpcClient *http.Client
	clientTLS *tls.Config
	hadState  bool
	// push is pushCommit's state: pushIdle, pushRunning or pushAgain.
	push atomic.Int32
}

// The states of Node.push.
const (
	pushIdle    = iota // no barrier in flight
	pushRunning        // a barrier in flight
	pushAgain          // a barrier in flight, and another asked for
)

// Start opens the node's stores, starts Raft on the cluster port and, if
// configured and there is no Raft state yet, bootstraps a one-node
// cluster. It returns once Raft runs; use WaitLeader to wait for a leader.
func Start(cfg Config) (*Node, error) {
	if cfg.ID == "" || cfg.DataDir == "" || cfg.Listener == nil || cfg.TLS == nil || cfg.FSM == nil || cfg.Authorize == nil {
		return nil, errors.New("cluster: ID, DataDir, Listener, TLS, FSM and Authorize are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Listener.Addr().String()
	}
	if cfg.OnFatal == nil {
		cfg.OnFatal = func(err error) { panic(err) }
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.Named("cluster")}

	serverTLS := cfg.TLS.Clone()
	serverTLS.ClientAuth = tls.RequireAnyClientCert
	serverTLS.NextProtos = nil
	n.clientTLS = cfg.TLS.Clone()
	n.clientTLS.InsecureSkipVerify = true // peers are checked by Authorize on their key
	if n.clientTLS.GetClientCertificate == nil && len(n.clientTLS.Certificates) == 0 && cfg.TLS.GetCertificate != nil {
		get := cfg.TLS.GetCertificate
		n.clientTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get(&tls.ClientHelloInfo{})
		}
	}
	n.clientTLS.NextProtos = nil

	n.conns = newRegistry()
	n.mux = newMux(cfg.Listener, serverTLS, cfg.Authorize, n.conns, n.log)
	if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
		n.mux.close()
		return nil, fmt.Errorf("cluster: advertise address %q: %w", cfg.Advertise, err)
	}
	advertise := advertiseAddr(cfg.Advertise)
	stream := &streamLayer{subListener: n.mux.raft, advertise: advertise, tlsConfig: n.clientTLS, authorize: cfg.Authorize, dial: cfg.Dial, conns: n.conns}
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  cfg.Logger.Named("raft-net"),
	})

	if err := n.startRaft(); err != nil {
		n.transport.Close()
		n.mux.close()
		return nil, err
	}
	if cfg.RPC == nil {
		n.mux.rpc.close() // nobody serves RPC: refuse such connections
	} else {
		n.rpcServer = &http.Server{
			Handler:           n.authorizeRPC(cfg.RPC),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          cfg.Logger.Named("rpc").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
			ConnState: func(c net.Conn, st http.ConnState) {
				if st == http.StateClosed || st == http.StateHijacked {
					n.conns.remove(c)
				}
			},
		}
		go func() { _ = n.rpcServer.Serve(n.mux.rpc) }()
	}
	n.rpcClient = &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, cfg.Dial, addr, kindRPC, n.clientTLS, cfg.Authorize, n.conns)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}}
	return n, nil
}

// raftLogCache is how many recent Raft log entries are kept in memory.
const raftLogCache = 512

// commitTimeout is the Raft commit timeout (see startRaft).
const commitTimeout = 500 * time.Millisecond

func (n *Node) startRaft() error {
	cfg := n.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = cfg.Logger.Named("raft")
	// Tuned for a LAN: a lost leader is replaced within a few seconds.
	rc.HeartbeatTimeout = 1000 * time.Millisecond
	rc.ElectionTimeout = 1000 * time.Millisecond
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
	// CommitTimeout paces the empty AppendEntries a quiet leader sends so
	// that followers learn the commit index (and apply) without waiting
	// for the next write. Every one costs a TLS round trip and a log read
	// on the leader for each follower, all the time: an idle three-node
	// cluster spent 68 ms of CPU per second at 20 ms, 24-32 ms/s at the
	// library's 50 ms, a tax on every read. No write waits for it (Apply
	// pushes the commit index itself: pushCommit), so it only bounds how
	// late a follower learns of entries nobody pushed.
	rc.CommitTimeout = commitTimeout
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
		rc.TrailingLogs = cfg.SnapshotThreshold
		rc.SnapshotInterval = 200 * time.Millisecond
	}

	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.DataDir, "raft.db"),
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return fmt.Errorf("cluster: open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, cfg.Logger.Named("snapshot"))
	if err != nil {
		store.Close()
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	if err := n.recoverFromPeersFile(rc, store, snaps); err != nil {
		store.Close()
		return err
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		store.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	n.hadState = has
	if cfg.Bootstrap {
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.transport.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, store, store, snaps, n.transport, conf); err != nil {
				store.Close()
				return fmt.Errorf("cluster: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped a new cluster", "id", cfg.ID, "address", n.transport.LocalAddr())
		}
	}
	// The log cache (write-through) serves the recent entries replication
	// reads, for every AppendEntries, from memory instead of bbolt.
	logs, err := raft.NewLogCache(raftLogCache, store)
	if err != nil {
		store.Close()
		return fmt.Errorf("cluster: raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, &raftFSM{f: cfg.FSM, onFatal: cfg.OnFatal, log: n.log}, logs, store, snaps, n.transport)
	if err != nil {
		store.Close()
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft, n.store = r, store
	return nil
}

// PeersFile is the name, inside the data directory, of the file an operator
// writes to recover from a lost quorum (see docs/operations.md): a JSON
// array of {"id","address","non_voter"} entries naming the surviving
// members. At start the node rewrites its Raft configuration to exactly
// those members and renames the file to peers.json.applied.
const PeersFile = "peers.json"

func (n *Node) recoverFromPeersFile(rc *raft.Config, store *raftboltdb.BoltStore, snaps raft.SnapshotStore) error {
	path := filepath.Join(n.cfg.DataDir, PeersFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", path, err)
	}
	// RecoverCluster replays the log into a scratch FSM; it must not touch
	// the node's real state, which Raft restores itself afterwards.
	scratch, err := fsm.Open(filepath.Join(n.cfg.DataDir, "recover-fsm.db"), nil)
	if err != nil {
		return err
	}
	defer os.Remove(filepath.Join(n.cfg.DataDir, "recover-fsm.db"))
	defer scratch.Close()
	// The log may miss the last entries the lost majority committed
	// (a key delete, say): hold back every key record this node has
	// until the leader has reconciled them with the keystore.
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("cluster: recover from %s: %w", path, err)
	}
	if err := n.cfg.FSM.HoldBack(max(last, n.cfg.FSM.AppliedIndex())); err != nil {
		return err
	}
	if err := raft.RecoverCluster(rc, &raftFSM{f: scratch, onFatal: n.cfg.OnFatal, log: n.log}, store, store, snaps, n.transport, conf); err != nil {
		return fmt.Errorf("cluster: recover from %s: %w", path, err)
	}
	if err := os.Rename(path, path+".applied"); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.log.Warn("recovered the Raft configuration from the peers file", "servers", len(conf.Servers))
	return nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Address returns the node's advertised cluster address.
func (n *Node) Address() string { return string(n.transport.LocalAddr()) }

// FSM returns the node's state machine.
func (n *Node) FSM() *fsm.FSM { return n.cfg.FSM }

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's id and cluster address, or
// ErrNoLeader.
func (n *Node) Leader() (id, addr string, err error) {
	a, i := n.raft.LeaderWithID()
	if a == "" {
		return "", "", ErrNoLeader
	}
	return string(i), string(a), nil
}

// WaitLeader blocks until a leader is known or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, _, err := n.Leader(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for leader: %w", ErrNoLeader)
		case <-t.C:
		}
	}
}

// Apply proposes cmd and waits until it is committed and applied on this
// node (the leader). It returns the Raft index and the command's
// deterministic result as the error (fsm.ErrExists, ...), ErrNotLeader on a
// follower, or a context error. Once the command is committed, the
// followers are told so at once (pushCommit), so that they apply it within
// a round trip rather than at the commit timeout: a client that wrote
// through one node reads its write on any other node a moment later, and a
// write forwarded by a follower, which waits until the follower applied
// it, is not held up. Safe for concurrent use.
func (n *Node) Apply(ctx context.Context, cmd fsm.Command) (uint64, error) {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return 0, err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return 0, ctx.Err()
		}
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, fmt.Errorf("cluster: apply: %w", err)
	}
	n.pushCommit()
	if res, ok := f.Response().(error); ok && res != nil {
		return f.Index(), res
	}
	return f.Index(), nil
}

// pushCommit makes the followers learn the leader's commit index now
// rather than at the next commit timeout (0.5-1 s in a quiet cluster): a
// Raft barrier entry is appended, whose replication carries the commit
// index. It does not wait. Pushes coalesce: while a barrier is in flight,
// any number of pushes make one more barrier after it, which carries every
// commit they were asked for, so a steady stream of writes costs a barrier
// per round trip, not one per write. Safe for concurrent use.
func (n *Node) pushCommit() {
	for {
		s := n.push.Load()
		if s == pushAgain {
			return
		}
		if n.push.CompareAndSwap(s, s+1) {
			if s == pushIdle {
				go n.runPush()
			}
			return
		}
	}
}

// runPush appends barriers, one at a time, until no push asks for another.
// On a follower, with no other servers, or if the leader is too busy to
// take the entry within 100 ms, a round appends nothing. It returns at
// once when Raft shuts down (the barrier fails).
func (n *Node) runPush() {
	for {
		if servers, err := n.Servers(); err == nil && len(servers) >= 2 && n.raft.State() == raft.Leader {
			_ = n.raft.Barrier(100 * time.Millisecond).Error()
		}
		if n.push.CompareAndSwap(pushRunning, pushIdle) {
			return
		}
		n.push.Store(pushRunning) // it was pushAgain: one more round
	}
}

// Shutdown leaves gracefully: a leader with peers first hands leadership
// to another voter, then Raft, the RPC server and the stores stop.
func (n *Node) Shutdown() error {
	if n.IsLeader() && n.voters() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer failed", "error", err)
		}
	}
	err := n.raft.Shutdown().Error()
	if n.rpcServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.rpcServer.Shutdown(ctx)
		cancel()
	}
	n.rpcClient.CloseIdleConnections()
	n.transport.Close()
	n.mux.close()
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	v := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

// raftFSM adapts fsm.FSM to raft.FSM.
type raftFSM struct {
	f       *fsm.FSM
	onFatal func(error)
	log     hclog.Logger
}

func (r *raftFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	res, fatal := r.f.Apply(l.Index, l.Data)
	if fatal != nil {
		r.log.Error("stopping: cannot apply a committed command", "index", l.Index, "error", fatal)
		r.onFatal(fatal)
		return fatal
	}
	return res
}

func (r *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := r.f.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s}, nil
}

func (r *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return r.f.Restore(rc)
}

type fsmSnapshot struct {
	s    *fsm.Snapshot
	once sync.Once
}

// Persist writes the snapshot and releases it: raft.RecoverCluster never
// calls Release, and an open read transaction would block the FSM's Close.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release may be called more than once.
func (s *fsmSnapshot) Release() { s.once.Do(s.s.Release) }

// HasState reports whether the node had Raft state (log or snapshots) when
// it started: a node without it is new and must join or bootstrap.
func (n *Node) HasState() bool { return n.hadState }

// LeaderContact returns when this node last knew its cluster to have a
// leader it is in touch with: now on the leader (hashicorp/raft steps a
// leader down when it loses its quorum), the last message from the leader
// on a follower, and the zero time if it has heard none since it started.
func (n *Node) LeaderContact() time.Time {
	if n.IsLeader() {
		return time.Now()
	}
	return n.raft.LastContact()
}

// InConfiguration reports whether this node is a server in its latest
// known Raft configuration. A node that was removed, and received the
// configuration that removed it, is not. An empty configuration (a new node
// that has not joined yet) counts as in.
func (n *Node) InConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	servers := f.Configuration().Servers
	if len(servers) == 0 {
		return true
	}
	for _, s := range servers {
		if string(s.ID) == n.cfg.ID {
			return true
		}
	}
	return false
}
