package systemtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/kes"
)

// memberRPC is what a process holding a genuine member's certificate can
// do on the cluster port: dial TLS, say 'H', speak HTTP/1.1.
type memberRPC struct {
	t  *testing.T
	hc *http.Client
}

func newMemberRPC(t *testing.T, c *testCluster, certName string) *memberRPC {
	t.Helper()
	nc := c.cert(certName)
	cert, err := tls.LoadX509KeyPair(nc.certFile, nc.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := &tls.Dialer{Config: tcfg}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if _, err := conn.Write([]byte{'H'}); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &memberRPC{t: t, hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// forward posts op to the leader's forward RPC, retrying while the node it
// reached is not (or no longer) the leader, and returns the leader's
// Result.
func (m *memberRPC) forward(c *testCluster, op enclave.Op) enclave.Result {
	m.t.Helper()
	body, err := json.Marshal(op)
	if err != nil {
		m.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr := c.nodes[c.leader()].rftAddr
		resp, err := m.hc.Post("https://"+addr+"/cluster/v1/forward", "application/json", bytes.NewReader(body))
		if err != nil {
			m.t.Fatalf("forward %s: %v", op.Kind, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			var res enclave.Result
			if err := json.Unmarshal(b, &res); err != nil {
				m.t.Fatalf("forward %s: %v in %q", op.Kind, err, b)
			}
			return res
		case resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline):
			waitTick() // leadership moved; ask the new leader
		default:
			m.t.Fatalf("forward %s: %s %s", op.Kind, resp.Status, bytes.TrimSpace(b))
		}
	}
}

// TestLeaderValidatesForwardedOps: a process with a genuine member's
// certificate forwards ops that no API request can produce. The leader
// refuses each with the API's error, and the seal entry survives in the
// keystore.
func TestLeaderValidatesForwardedOps(t *testing.T) {
	c := threeNodes(t)
	seal, err := os.ReadFile(filepath.Join(c.keystore, enclave.SealName))
	if err != nil {
		t.Fatalf("seal entry: %v", err)
	}
	admin := c.admin.Identity()
	if err := c.client("n1").CreateEnclave(bg, "tenant", admin); err != nil {
		t.Fatal(err)
	}
	before := keystoreFiles(t, c.keystore)
	member := newMemberRPC(t, c, follower(c))

	tests := []struct {
		name string
		op   enclave.Op
		want kes.Error
	}{
		{"delete the seal entry", enclave.Op{Kind: enclave.OpDeleteKey, Enclave: enclave.DefaultEnclave, Name: enclave.SealName, Identity: admin}, enclave.InvalidKeyName(enclave.SealName)},
		{"load the seal entry", enclave.Op{Kind: enclave.OpLoadKey, Enclave: enclave.DefaultEnclave, Name: enclave.SealName}, enclave.InvalidKeyName(enclave.SealName)},
		{"create a key with an invalid name", enclave.Op{Kind: enclave.OpCreateKey, Enclave: enclave.DefaultEnclave, Name: "../escape", Identity: admin}, enclave.InvalidKeyName("../escape")},
		{"create a key in a missing enclave", enclave.Op{Kind: enclave.OpCreateKey, Enclave: "missing", Name: "k", Identity: admin}, kes.ErrEnclaveNotFound},
		{"address an enclave namespace", enclave.Op{Kind: enclave.OpDeleteKey, Enclave: "e.tenant", Name: "k", Identity: admin}, enclave.InvalidEnclaveName("e.tenant")},
		{"delete the default enclave", enclave.Op{Kind: enclave.OpDeleteEnclave, Enclave: enclave.DefaultEnclave, Identity: admin}, kes.Error{Code: 400, Message: "the default enclave cannot be deleted"}},
		{"an enclave admin that is no identity", enclave.Op{Kind: enclave.OpCreateEnclave, Enclave: "other", Admin: "", Identity: admin}, enclave.InvalidIdentity("")},
		{"import a short key", enclave.Op{Kind: enclave.OpImportKey, Enclave: "tenant", Name: "k", Key: make([]byte, 16), Cipher: "AES256", Identity: admin}, kes.NewError(406, "invalid key size for 'AES256'")},
	}
	for _, tc := range tests {
		res := member.forward(c, tc.op)
		if res.Err == nil || !errors.Is(*res.Err, tc.want) {
			t.Errorf("%s: leader answered %+v, want %d %q", tc.name, res.Err, tc.want.Code, tc.want.Message)
		}
	}
	got, err := os.ReadFile(filepath.Join(c.keystore, enclave.SealName))
	if err != nil || !bytes.Equal(got, seal) {
		t.Fatalf("seal entry after the forwarded ops: %v", err)
	}
	if after := keystoreFiles(t, c.keystore); len(after) != len(before) {
		t.Fatalf("keystore changed: %v -> %v", before, after)
	}
	// The cluster still serves keys.
	cl := c.client(follower(c))
	if err := cl.CreateKey(bg, "after"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GenerateKey(bg, "after", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DescribeKey(bg, enclave.SealName); !errors.Is(err, enclave.InvalidKeyName(enclave.SealName)) {
		t.Fatalf("describe the seal entry through the API: %v", err)
	}
}

// keystoreFiles returns the names of the fs keystore's entries.
func keystoreFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
