package systemtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil/netfault"
	"github.com/keyraft/keyraft/store"
)

// testCluster is a set of in-process Keyraft nodes sharing one fs keystore
// directory (as real nodes share AWS Secrets Manager).
type testCluster struct {
	t        *testing.T
	root     string
	keystore string
	admin    identity.APIKey
	nodes    map[string]*testNode
	certs    map[string]nodeCert
	policies map[string]config.Policy

	snapshotThreshold uint64
	isolation         time.Duration // cluster.isolation_timeout; 0: default
	offline           time.Duration // cache.expiry.offline of every node
	protectDeletion   []string      // protection.deletion of every node
	recoveryWindow    time.Duration // protection.recovery_window of every node
	logDone           atomic.Bool
}

type nodeCert struct {
	certFile, keyFile, identity string
}

type testNode struct {
	id      string
	cfg     *config.Config
	srv     *server.Server
	sw      *netfault.Switch
	apiAddr string
	rftAddr string
	store   store.Store // nil: the config's keystore
}

// newTestCluster prepares certificates for the given node ids; nodes are
// started with start.
func newTestCluster(t *testing.T, ids ...string) *testCluster {
	t.Helper()
	root := t.TempDir()
	admin, err := identity.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{
		t: t, root: root, keystore: filepath.Join(root, "keystore"), admin: admin,
		nodes: map[string]*testNode{}, certs: map[string]nodeCert{}, policies: map[string]config.Policy{},
	}
	var nodeIDs []string
	for _, id := range ids {
		nodeIDs = append(nodeIDs, c.cert(id).identity)
	}
	// The cluster admin authorizes the nodes' certificates to join.
	c.policies["cluster-nodes"] = config.Policy{Allow: []string{"/v1/cluster/join"}, Identities: nodeIDs}
	t.Cleanup(c.closeAll)
	return c
}

// cert returns (creating) the certificate of a node name.
func (c *testCluster) cert(name string) nodeCert {
	if nc, ok := c.certs[name]; ok {
		return nc
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatal(err)
	}
	cert, der, err := identity.SelfSigned(key, identity.CertOptions{
		Subject: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		Expiry: time.Hour, ServerAuth: true, ClientAuth: true,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	keyPEM, _ := identity.EncodePrivateKeyPEM(key)
	dir := filepath.Join(c.root, "certs", name)
	os.MkdirAll(dir, 0o700)
	nc := nodeCert{certFile: filepath.Join(dir, "node.cert"), keyFile: filepath.Join(dir, "node.key"), identity: identity.Of(cert)}
	os.WriteFile(nc.certFile, identity.EncodeCertificatePEM(der), 0o600)
	os.WriteFile(nc.keyFile, keyPEM, 0o600)
	c.certs[name] = nc
	return nc
}

// config returns a node's configuration. The first node bootstraps; the
// others join through the given members' APIs.
func (c *testCluster) config(id, certName string, join []string) *config.Config {
	nc := c.cert(certName)
	return &config.Config{
		Address:  "127.0.0.1:0",
		Admin:    c.admin.Identity(),
		TLS:      config.TLS{Cert: nc.certFile, Key: nc.keyFile},
		Policies: c.policies,
		Cache:    config.Cache{Any: 5 * time.Minute, Unused: time.Hour, Offline: c.offline},
		Keystore: config.Keystore{FS: &config.FS{Path: c.keystore}},

		ProtectDeletion: c.protectDeletion,
		RecoveryWindow:  c.recoveryWindow,
		Cluster: config.Cluster{
			NodeID:    id,
			DataDir:   filepath.Join(c.root, "data", id),
			Bootstrap: len(join) == 0,
			Join:      join,

			IsolationTimeout: c.isolation,
		},
	}
}

// start starts node id (bootstrapping if join is empty) and waits until it
// serves. A node started before keeps its ports.
func (c *testCluster) start(id string, join ...string) *testNode {
	return c.startWith(id, id, join, nil)
}

func (c *testCluster) startWith(id, certName string, join []string, st store.Store) *testNode {
	c.t.Helper()
	n := c.nodes[id]
	if n == nil {
		n = &testNode{id: id, sw: netfault.New(), apiAddr: "127.0.0.1:0", rftAddr: "127.0.0.1:0"}
		n.cfg = c.config(id, certName, join)
		c.nodes[id] = n
	}
	n.store = st
	apiLn := c.listen(n.apiAddr)
	raftLn := c.listen(n.rftAddr)
	n.apiAddr, n.rftAddr = apiLn.Addr().String(), raftLn.Addr().String()
	n.cfg.Cluster.APIAdvertise = "https://" + n.apiAddr
	n.sw.Heal()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, n.cfg, server.Options{
		APIListener:       apiLn,
		RaftListener:      n.sw.Listener(raftLn),
		Dial:              n.sw.Dial,
		AuditOut:          io.Discard,
		Store:             st,
		SnapshotThreshold: c.snapshotThreshold,
		HealthInterval:    200 * time.Millisecond,
		Logger:            hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: testLog{c.t, &c.logDone}}),
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	n.srv = srv
	return n
}

// reauthorize has the cluster admin add node id with certName's
// certificate explicitly (`keyraft cluster add`), on a cluster port
// reserved for it now, so that start(id) can join with it afterwards: the
// way back in for a certificate whose member was removed.
func (c *testCluster) reauthorize(id, certName string, join []string) {
	c.t.Helper()
	reserved := c.listen("127.0.0.1:0")
	raftAddr := reserved.Addr().String()
	reserved.Close()
	n := &testNode{id: id, sw: netfault.New(), apiAddr: "127.0.0.1:0", rftAddr: raftAddr}
	n.cfg = c.config(id, certName, join)
	c.nodes[id] = n
	m := client.Member{ID: id, RaftAddr: raftAddr, Identity: c.cert(certName).identity}
	if _, err := c.client(c.leader()).AddMember(context.Background(), m); err != nil {
		c.t.Fatalf("re-authorize %s as %s: %v", certName, id, err)
	}
}

func (c *testCluster) listen(addr string) net.Listener {
	c.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

// stop shuts a node down (gracefully).
func (c *testCluster) stop(id string) {
	c.t.Helper()
	n := c.nodes[id]
	if n.srv == nil {
		return
	}
	if err := n.srv.Close(); err != nil {
		c.t.Logf("stop %s: %v", id, err)
	}
	n.srv = nil
}

func (c *testCluster) closeAll() {
	for id := range c.nodes {
		c.stop(id)
	}
	c.logDone.Store(true)
}

// client returns an admin client talking only to node id.
func (c *testCluster) client(id string) *client.Client {
	return c.clientWith(c.admin, id)
}

func (c *testCluster) clientWith(key identity.APIKey, ids ...string) *client.Client {
	c.t.Helper()
	var eps []string
	for _, id := range ids {
		eps = append(eps, "https://"+c.nodes[id].apiAddr)
	}
	cl, err := client.New(eps, client.WithAPIKey(key), client.WithInsecureSkipVerify())
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// leader returns the id of the running node that leads, waiting for one.
func (c *testCluster) leader() string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for id, n := range c.nodes {
			if n.srv != nil && n.srv.Node().IsLeader() {
				return id
			}
		}
		waitTick()
	}
	c.t.Fatal("no leader within 30s")
	return ""
}

// running returns the ids of running nodes.
func (c *testCluster) running() []string {
	var ids []string
	for id, n := range c.nodes {
		if n.srv != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func waitTick() { <-time.After(20 * time.Millisecond) }

// testLog sends node logs to the test log until the test ends; goroutines
// that log after that (a closing connection) are silenced.
type testLog struct {
	t    *testing.T
	done *atomic.Bool
}

func (w testLog) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(bytes.TrimSpace(p)))
	}
	return len(p), nil
}
