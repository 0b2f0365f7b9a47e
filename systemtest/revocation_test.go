package systemtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
)

// memberConn is a keep-alive HTTP/1.1 connection to a node's cluster RPC
// channel, opened with a node certificate, as a member holds one.
type memberConn struct {
	conn *tls.Conn
	br   *bufio.Reader
	addr string
}

// dialMember opens an RPC connection to addr with the certificate of the
// named node. It fails if the handshake fails or the port refuses the
// connection kind byte.
func dialMember(c *testCluster, certName, addr string) (*memberConn, error) {
	nc := c.cert(certName)
	cert, err := tls.LoadX509KeyPair(nc.certFile, nc.keyFile)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte{'H'}); err != nil {
		conn.Close()
		return nil, err
	}
	return &memberConn{conn: conn, br: bufio.NewReader(conn), addr: addr}, nil
}

// post sends one RPC on the held connection and returns the answer's
// status and body. An error means the connection no longer answers.
func (m *memberConn) post(path, body string) (int, string, error) {
	m.conn.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest(http.MethodPost, "https://"+m.addr+path, strings.NewReader(body))
	if err := req.Write(m.conn); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(m.br, req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (m *memberConn) close() { m.conn.Close() }

// rpcAs opens a fresh connection with certName's certificate and sends one
// RPC. It returns the status (0 when the port closed the connection).
func rpcAs(c *testCluster, certName, addr, path string) int {
	m, err := dialMember(c, certName, addr)
	if err != nil {
		return 0
	}
	defer m.close()
	status, _, err := m.post(path, "{}")
	if err != nil {
		return 0
	}
	return status
}

// TestRemovalRevokesAtOnce: removing a member closes the connections it
// holds on every node within a second, refuses its new ones (no seal key),
// stops it serving, and keeps its certificate out under a new node id
// until the cluster admin re-authorizes it with `cluster add`.
func TestRemovalRevokesAtOnce(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)
	leader := c.leader()
	var victim, other string
	for _, id := range []string{"n3", "n2", "n1"} {
		switch {
		case id == leader:
		case victim == "":
			victim = id
		default:
			other = id
		}
	}
	ctx := context.Background()
	admin := c.client(leader)
	if err := admin.CreateKey(ctx, "before-removal"); err != nil {
		t.Fatal(err)
	}

	// The victim holds working connections to the leader and the other
	// follower; the seal key is served to it while it is a member.
	held := map[string]*memberConn{}
	for _, id := range []string{leader, other} {
		m, err := dialMember(c, victim, c.nodes[id].rftAddr)
		if err != nil {
			t.Fatalf("dial %s as %s: %v", id, victim, err)
		}
		defer m.close()
		if status, body, err := m.post("/cluster/v1/info", "{}"); err != nil || status != http.StatusOK {
			t.Fatalf("info from %s as member %s: %d %q %v", id, victim, status, body, err)
		}
		held[id] = m
	}
	if status := rpcAs(c, victim, c.nodes[leader].rftAddr, "/cluster/v1/seal"); status != http.StatusOK {
		t.Fatalf("a member was refused the seal key: %d", status)
	}

	if err := admin.RemoveMember(ctx, victim); err != nil {
		t.Fatalf("remove %s: %v", victim, err)
	}
	removed := time.Now()

	// Every held connection is closed within a second of the removal.
	for id, m := range held {
		testutil.Eventually(t, time.Second, "held connection to "+id+" closed", func() bool {
			_, _, err := m.post("/cluster/v1/info", "{}")
			return err != nil
		})
	}
	t.Logf("held connections closed %v after the removal was acknowledged", time.Since(removed).Round(time.Millisecond))

	// New connections with the removed certificate get nothing, from the
	// leader or from a node that joined (and once trusted its join answer).
	for _, id := range []string{leader, other} {
		for _, path := range []string{"/cluster/v1/seal", "/cluster/v1/info"} {
			if status := rpcAs(c, victim, c.nodes[id].rftAddr, path); status != 0 {
				t.Fatalf("%s answered %s to the removed member: %d", id, path, status)
			}
		}
	}

	// The removed node stops serving: 503 on key routes and on ready.
	vc := c.client(victim)
	testutil.Eventually(t, 2*time.Second, "removed node answers 503", func() bool {
		_, err := vc.DescribeKey(ctx, "before-removal")
		var ke kes.Error
		return errors.As(err, &ke) && ke.Code == http.StatusServiceUnavailable && strings.Contains(ke.Message, "removed")
	})
	var ke kes.Error
	if err := vc.Ready(ctx); !errors.As(err, &ke) || ke.Code != http.StatusServiceUnavailable {
		t.Fatalf("removed node's ready = %v, want 503", err)
	}
	t.Logf("removed node fenced %v after the removal", time.Since(removed).Round(time.Millisecond))

	// Its certificate cannot rejoin under a new id through the
	// cluster-nodes policy that let it join the first time.
	cfg := c.config("n3-again", victim, []string{"https://" + c.nodes[leader].apiAddr})
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	srv, err := server.Start(sctx, cfg, server.Options{APIListener: listenT(t), RaftListener: listenT(t), AuditOut: io.Discard})
	cancel()
	if err == nil {
		srv.Close()
		t.Fatal("a removed member's certificate rejoined under a new id")
	}
	if !strings.Contains(err.Error(), "removed member") {
		t.Fatalf("rejoin error = %v, want the revoked-identity refusal", err)
	}
	if servers, _ := c.nodes[leader].srv.Node().Servers(); len(servers) != 2 {
		t.Fatalf("cluster has %d servers after the refused rejoin, want 2", len(servers))
	}

	// The admin re-authorizes the certificate explicitly; then it joins.
	rejoin := []string{"https://" + c.nodes[leader].apiAddr}
	c.reauthorize("n4", victim, rejoin)
	c.startWith("n4", victim, rejoin, nil)
	if _, err := c.client("n4").DescribeKey(ctx, "before-removal"); err != nil {
		t.Fatalf("re-authorized node does not serve: %v", err)
	}
}

// TestCutOffNodeStopsServing: a follower that hears no leader for
// cluster.isolation_timeout stops generating (503, not ready) but keeps
// decrypting until cache.expiry.offline, then answers 503 to everything;
// reconnected, it serves again.
func TestCutOffNodeStopsServing(t *testing.T) {
	const (
		isolation = 2 * time.Second
		offline   = 4 * time.Second
	)
	c := newTestCluster(t, "n1", "n2", "n3")
	c.isolation, c.offline = isolation, offline
	c.start("n1")
	join := "https://" + c.nodes["n1"].apiAddr
	c.start("n2", join)
	c.start("n3", join)
	leader := c.leader()
	follower := "n2"
	if leader == follower {
		follower = "n3"
	}
	ctx := context.Background()
	if err := c.client(leader).CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	fc := c.client(follower)
	var dek client.DEK
	testutil.Eventually(t, 5*time.Second, "follower serves k", func() bool {
		var err error
		dek, err = fc.GenerateKey(ctx, "k", nil)
		return err == nil
	})
	is503 := func(err error) bool {
		var ke kes.Error
		return errors.As(err, &ke) && ke.Code == http.StatusServiceUnavailable
	}
	metric := func(name string) float64 {
		m, err := fc.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Value(name)
	}

	c.nodes[follower].sw.Cut()
	cut := time.Now()
	// Within the bound the cut-off node keeps serving what it holds.
	if _, err := fc.GenerateKey(ctx, "k", nil); err != nil && time.Since(cut) < isolation {
		t.Fatalf("cut-off node failed within the isolation timeout: %v", err)
	}
	var genStopped, decStopped time.Duration
	testutil.Eventually(t, isolation+5*time.Second, "cut-off node refuses generate", func() bool {
		_, err := fc.GenerateKey(ctx, "k", nil)
		genStopped = time.Since(cut)
		return is503(err)
	})
	if genStopped < isolation {
		t.Fatalf("generate refused after %v, before the isolation timeout %v", genStopped, isolation)
	}
	if err := fc.Ready(ctx); !is503(err) {
		t.Fatalf("cut-off node's ready = %v, want 503", err)
	}
	if _, err := fc.Decrypt(ctx, "k", dek.Ciphertext, nil); err != nil && time.Since(cut) < offline {
		t.Fatalf("decrypt refused %v after the cut, before cache.expiry.offline %v: %v", time.Since(cut), offline, err)
	}
	if got := metric("keyraft_node_decrypt_only"); got != 1 && time.Since(cut) < offline {
		t.Fatalf("keyraft_node_decrypt_only = %v while only decrypts are served", got)
	}
	testutil.Eventually(t, offline+5*time.Second, "cut-off node refuses decrypt", func() bool {
		_, err := fc.Decrypt(ctx, "k", dek.Ciphertext, nil)
		decStopped = time.Since(cut)
		return is503(err)
	})
	if decStopped < offline {
		t.Fatalf("decrypt refused after %v, before cache.expiry.offline %v", decStopped, offline)
	}
	if got := metric("keyraft_node_fenced"); got != 1 {
		t.Fatalf("keyraft_node_fenced = %v after the offline bound", got)
	}
	t.Logf("cut-off node: generate refused %v, decrypt refused %v after the cut (isolation_timeout %v, offline %v)",
		genStopped.Round(time.Millisecond), decStopped.Round(time.Millisecond), isolation, offline)

	c.nodes[follower].sw.Heal()
	testutil.Eventually(t, 15*time.Second, "reconnected node serves again", func() bool {
		_, err := fc.GenerateKey(ctx, "k", nil)
		return err == nil
	})
}
