package systemtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/testutil"
)

// procCluster runs the built keyraft binary as separate processes on
// 127.0.0.1, one config file, data directory and log file per node, all
// sharing one fs keystore directory.
type procCluster struct {
	t        *testing.T
	bin      string
	root     string
	keystore string
	admin    identity.APIKey
	order    []string // node ids in start order
	nodes    map[string]*procNode
}

// procNode is one keyraft server process.
type procNode struct {
	id                 string
	dir                string
	certFile, keyFile  string
	nodeIdentity       string
	apiAddr, raftAddr  string
	logFile            string
	cmd                *exec.Cmd
	exited             chan struct{} // closed when the process has been reaped
	waitErr            error         // valid after exited is closed
	killedByTest, dead bool
}

// endpoint is the node's API URL.
func (n *procNode) endpoint() string { return "https://" + n.apiAddr }

// buildKeyraft compiles ./cmd/keyraft into dir and returns the binary's path.
func buildKeyraft(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "keyraft")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/keyraft")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/keyraft: %v\n%s", err, out)
	}
	return bin
}

// newProcCluster builds the binary and prepares certificates for the given
// node ids, a policy that lets exactly those identities join, and an admin
// API key. Every process it starts is killed (SIGKILL, by PID) when the
// test ends, and the node logs are dumped if the test failed.
func newProcCluster(t *testing.T, ids ...string) *procCluster {
	t.Helper()
	root := t.TempDir()
	admin, err := identity.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &procCluster{
		t: t, bin: buildKeyraft(t, root), root: root, keystore: filepath.Join(root, "keystore"),
		admin: admin, nodes: map[string]*procNode{},
	}
	for _, id := range ids {
		dir := filepath.Join(root, id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		certFile, keyFile, nodeID := newCertFiles(t, dir, "node", false)
		c.nodes[id] = &procNode{
			id: id, dir: dir, certFile: certFile, keyFile: keyFile, nodeIdentity: nodeID,
			logFile: filepath.Join(dir, "keyraft.log"),
		}
	}
	// Cleanups run last-registered first: processes die, then logs are read.
	t.Cleanup(c.dumpLogsOnFailure)
	t.Cleanup(c.killAll)
	return c
}

// freeLoopbackPort returns a port that was free a moment ago. Another
// process may take it before the node binds it; start retries then.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln := testutil.Listen(t)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes the node's KES-style YAML config: its own address,
// Raft address, data directory and certificate; the shared admin identity,
// join policy and fs keystore; cluster.join when join is not empty.
func (c *procCluster) writeConfig(n *procNode, join []string) string {
	c.t.Helper()
	var nodeIDs []string
	for _, id := range c.sortedIDs() {
		nodeIDs = append(nodeIDs, c.nodes[id].nodeIdentity)
	}
	cluster := map[string]any{
		"node_id":      n.id,
		"data_dir":     filepath.Join(n.dir, "data"),
		"raft_address": n.raftAddr,
	}
	if len(join) > 0 {
		cluster["join"] = join
	}
	cfg := map[string]any{
		"version": "v1",
		"address": n.apiAddr,
		"admin":   map[string]any{"identity": c.admin.Identity()},
		"tls":     map[string]any{"key": n.keyFile, "cert": n.certFile},
		"policy": map[string]any{
			"cluster-nodes": map[string]any{"allow": []string{"/v1/cluster/join"}, "identities": nodeIDs},
		},
		"log":      map[string]any{"error": "INFO", "audit": "off"},
		"keystore": map[string]any{"fs": map[string]any{"path": c.keystore}},
		"cluster":  cluster,
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	file := filepath.Join(n.dir, "config.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return file
}

func (c *procCluster) sortedIDs() []string {
	return slices.Sorted(maps.Keys(c.nodes))
}

// start runs node id (bootstrapping when join is empty, else joining
// through the given API endpoints) and waits until GET /v1/status answers
// on it. A start that loses its ports to another process is retried with
// new ports.
func (c *procCluster) start(id string, join ...string) *procNode {
	c.t.Helper()
	n := c.nodes[id]
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		n.apiAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(c.t)))
		n.raftAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(c.t)))
		err := c.launch(n, join)
		if err == nil {
			return n
		}
		errs = append(errs, err)
		if !strings.Contains(c.logTail(n, 8<<10), "address already in use") {
			break
		}
		c.t.Logf("%s: port taken, retrying with new ports: %v", id, err)
	}
	c.t.Fatalf("start %s: %v", id, errors.Join(errs...))
	return nil
}

// launch starts one process for n and waits for it to serve.
func (c *procCluster) launch(n *procNode, join []string) error {
	cfgFile := c.writeConfig(n, join)
	logf, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start %s api=%s raft=%s at %s\n", n.id, n.apiAddr, n.raftAddr, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, "server", "--config", cfgFile)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("exec %s: %w", c.bin, err)
	}
	logf.Close() // the child holds its own descriptor
	n.cmd, n.exited, n.dead, n.killedByTest = cmd, make(chan struct{}), false, false
	if !slices.Contains(c.order, n.id) {
		c.order = append(c.order, n.id)
	}
	exited := n.exited
	go func() {
		n.waitErr = cmd.Wait()
		close(exited)
	}()
	return c.waitServing(n, 90*time.Second)
}

// waitServing polls GET /v1/status on n with the admin key until it
// answers, the process exits or the deadline passes.
func (c *procCluster) waitServing(n *procNode, within time.Duration) error {
	cl := c.client(n.id)
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cl.Status(ctx)
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-n.exited:
			n.dead = true
			return fmt.Errorf("%s exited before serving: %v", n.id, n.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not serving within %v: %w", n.id, within, lastErr)
}

// kill sends SIGKILL to the node's process and waits until it is reaped.
func (c *procCluster) kill(id string) {
	c.t.Helper()
	n := c.nodes[id]
	if n.cmd == nil || n.dead {
		return
	}
	n.killedByTest = true
	if err := n.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("kill %s (pid %d): %v", id, n.cmd.Process.Pid, err)
	}
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s (pid %d) not reaped 30s after SIGKILL", id, n.cmd.Process.Pid)
	}
	n.dead = true
}

func (c *procCluster) killAll() {
	for _, id := range c.order {
		c.kill(id)
	}
}

// checkAlive fails the test if a node the test did not kill has exited.
func (c *procCluster) checkAlive() {
	c.t.Helper()
	for _, id := range c.order {
		n := c.nodes[id]
		select {
		case <-n.exited:
			if !n.killedByTest {
				c.t.Errorf("%s exited on its own: %v", id, n.waitErr)
			}
		default:
		}
	}
}

// logTail returns up to max bytes from the end of n's log.
func (c *procCluster) logTail(n *procNode, max int) string {
	b, err := os.ReadFile(n.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		b = append([]byte("...\n"), b...)
	}
	return string(b)
}

func (c *procCluster) dumpLogsOnFailure() {
	if !c.t.Failed() {
		return
	}
	for _, id := range c.order {
		c.t.Logf("----- log of %s (%s) -----\n%s", id, c.nodes[id].logFile, c.logTail(c.nodes[id], 48<<10))
	}
}

// client returns an admin client over the given nodes' endpoints (all
// started nodes when ids is empty).
func (c *procCluster) client(ids ...string) *client.Client {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.order
	}
	var eps []string
	for _, id := range ids {
		eps = append(eps, c.nodes[id].endpoint())
	}
	cl, err := client.New(eps, client.WithAPIKey(c.admin), client.WithInsecureSkipVerify(),
		client.WithAttemptTimeout(10*time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// waitMembers polls cluster status through node id until it reports want
// voters and a leader, and returns the leader's id.
func (c *procCluster) waitMembers(id string, want int, within time.Duration) string {
	c.t.Helper()
	cl := c.client(id)
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cl.ClusterStatus(ctx)
		cancel()
		if err == nil {
			voters := 0
			for _, m := range st.Members {
				if m.Voter {
					voters++
				}
			}
			if st.Leader != "" && voters == want {
				return st.Leader
			}
			last = fmt.Sprintf("leader %q, %d voters", st.Leader, voters)
		} else {
			last = err.Error()
		}
		<-time.After(50 * time.Millisecond)
	}
	c.t.Fatalf("%s: cluster of %d voters with a leader not seen within %v (last: %s)", id, want, within, last)
	return ""
}
