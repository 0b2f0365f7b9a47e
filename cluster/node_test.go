package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/internal/identity"
)

func newCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, der, err := identity.SelfSigned(key, identity.CertOptions{Subject: "node", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Expiry: time.Hour, ServerAuth: true, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, identity.Of(cert)
}

func startOne(t *testing.T, dir string, ln net.Listener, cert tls.Certificate, allowed string) (*Node, *fsm.FSM) {
	t.Helper()
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(Config{
		ID: "n1", DataDir: dir, Listener: ln, Bootstrap: true, FSM: f,
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}},
		Authorize: func(id string) bool { return id == allowed },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n, f
}

func TestOneNodeApplyRestartAndPeerAuth(t *testing.T) {
	dir := t.TempDir()
	cert, id := newCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	n, f := startOne(t, dir, ln, cert, id)
	ctx := context.Background()
	idx, err := n.Apply(ctx, fsm.PutPolicy{Enclave: "default", Policy: fsm.PolicyRecord{Name: "p"}})
	if err != nil || idx == 0 {
		t.Fatalf("apply: %d %v", idx, err)
	}
	if _, err := n.Apply(ctx, fsm.SetSeal{Seal: fsm.SealRecord{ID: "a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Apply(ctx, fsm.SetSeal{Seal: fsm.SealRecord{ID: "b"}}); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("deterministic apply error not returned: %v", err)
	}
	if servers, err := n.Servers(); err != nil || len(servers) != 1 || !servers[0].Voter {
		t.Fatalf("servers = %v, %v", servers, err)
	}
	if info := n.Info(); info.State != "Leader" || info.AppliedIndex < idx {
		t.Fatalf("info = %+v", info)
	}

	// A peer whose certificate identity is not authorized cannot talk on
	// the cluster port: its RPC connection is closed after the handshake.
	stranger, _ := newCert(t)
	if c, err := dial(ctx, nil, addr, kindRPC, &tls.Config{Certificates: []tls.Certificate{stranger}, InsecureSkipVerify: true}, func(string) bool { return true }, nil); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a stranger's RPC connection was served")
		}
		c.Close()
	}
	// The node itself (authorized) can call its own RPC channel only if a
	// handler is set; with none, Call fails cleanly.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.Call(cctx, addr, "/nothing", nil, nil); err == nil {
		t.Fatal("RPC without a handler succeeded")
	}

	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Restart on the same data: the state is back and the node leads again.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n, f = startOne(t, dir, ln, cert, id)
	defer func() { n.Shutdown(); f.Close() }()
	if !n.HasState() {
		t.Fatal("restarted node reports no state")
	}
	if _, ok := f.Policy("default", "p"); !ok {
		t.Fatal("state lost on restart")
	}
	if _, err := n.Apply(ctx, fsm.PutPolicy{Enclave: "default", Policy: fsm.PolicyRecord{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
}

func TestStrangerIsRejected(t *testing.T) {
	dir := t.TempDir()
	cert, id := newCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, f := startOne(t, dir, ln, cert, id)
	defer func() { n.Shutdown(); f.Close() }()

	stranger, _ := newCert(t)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{stranger}, InsecureSkipVerify: true})
	if err != nil {
		return // rejected during the handshake: fine
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{kindRPC}); err != nil {
		return
	}
	buf := make([]byte, 1)
	if _, err := conn.Read(buf); err == nil {
		t.Fatal("a stranger's connection was served")
	}
}

// TestAdvertiseIsNotResolved: Raft must record the configured name, not
// the IP it resolves to today, so a member whose IP changes (a recreated
// container) stays reachable.
func TestAdvertiseIsNotResolved(t *testing.T) {
	dir := t.TempDir()
	cert, id := newCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Start(Config{
		ID: "n1", DataDir: dir, Listener: ln, Advertise: "localhost:" + port, Bootstrap: true, FSM: f,
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}},
		Authorize: func(got string) bool { return got == id },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	if n.Address() != "localhost:"+port {
		t.Fatalf("address = %q", n.Address())
	}
	servers, err := n.Servers()
	if err != nil || len(servers) != 1 || servers[0].Address != "localhost:"+port {
		t.Fatalf("servers = %v, %v", servers, err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Config{ID: "x", DataDir: t.TempDir(), Listener: ln2, Advertise: "no-port", FSM: f, TLS: &tls.Config{}, Authorize: func(string) bool { return true }}); err == nil {
		t.Fatal("an advertise address without a port was accepted")
	}
}
