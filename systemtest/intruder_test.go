package systemtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/server"
)

// TestIntruderCannotJoinOrLearnTheSealKey: a process whose certificate the
// cluster admin did not authorize can neither join nor fetch the seal key
// from the cluster port.
func TestIntruderCannotJoinOrLearnTheSealKey(t *testing.T) {
	c := newTestCluster(t, "n1")
	c.start("n1")
	n1 := c.nodes["n1"]

	// Joining with an unauthorized certificate is refused (403) until the
	// start gives up.
	cfg := c.config("intruder", "intruder", []string{"https://" + n1.apiAddr})
	ctx, cancel := context.WithTimeout(bg, 3*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg, server.Options{
		APIListener: listenT(t), RaftListener: listenT(t), AuditOut: io.Discard,
	})
	if err == nil {
		srv.Close()
		t.Fatal("an unauthorized node joined the cluster")
	}
	if !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("join error = %v, want the 403", err)
	}
	if servers, _ := n1.srv.Node().Servers(); len(servers) != 1 {
		t.Fatalf("cluster has %d servers after the attempt", len(servers))
	}

	// On the cluster port a stranger's connection is closed before any RPC
	// is served, so it cannot ask for the seal key.
	cert, err := tls.LoadX509KeyPair(c.cert("intruder").certFile, c.cert("intruder").keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", n1.rftAddr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err == nil {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		req, _ := http.NewRequest(http.MethodPost, "https://"+n1.rftAddr+"/cluster/v1/seal", strings.NewReader("{}"))
		if _, err := conn.Write([]byte{'H'}); err == nil {
			if err := req.Write(conn); err == nil {
				if resp, err := http.ReadResponse(bufio.NewReader(conn), req); err == nil {
					resp.Body.Close()
					t.Fatalf("the cluster port answered a stranger: %s", resp.Status)
				}
			}
		}
	}
}
