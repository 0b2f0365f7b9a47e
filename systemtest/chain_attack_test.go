package systemtest

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/enclave"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/testutil"
)

// TestChainAttackRefused is the "cluster takeover with no secret" attack:
// a stranger presents a two-certificate chain, a self-made CA certificate
// whose key it holds followed by a certificate it merely copied (a member's,
// which every node shows in its own handshakes, or the admin's). The
// handshake proves only the key of the first certificate, so the caller
// must not be named after the second one, on the cluster port or on the
// API port.
//
// Every refusal is checked against ground truth (no key, policy or member
// was created), and every attack has a positive control: the same request
// with the genuine certificate alone succeeds, so the harness is able to
// make the attack work if the server let it.
func TestChainAttackRefused(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "spare") // spare: allowed to join, never started
	n1 := c.start("n1")
	c.start("n2", "https://"+n1.apiAddr)
	leader := c.leader()
	follower := "n2"
	if leader == "n2" {
		follower = "n1"
	}
	ln := c.nodes[leader]
	admin := c.client(leader)

	ownCADER, ownCAKey := selfMadeCA(t)
	// The attacker learns the members' certificates from a handshake with
	// their cluster ports; no file access is needed.
	memberDER := map[string][]byte{}
	for _, id := range []string{leader, follower} {
		der := peerCertificate(t, c.nodes[id].rftAddr)
		if got := identity.Of(parseCert(t, der)); got != c.cert(id).identity {
			t.Fatalf("%s's cluster port showed identity %s, want %s", id, got, c.cert(id).identity)
		}
		memberDER[id] = der
	}
	chainWith := func(der []byte) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{ownCADER, der}, PrivateKey: ownCAKey}
	}
	genuine := func(name string) tls.Certificate {
		cert, err := tls.LoadX509KeyPair(c.cert(name).certFile, c.cert(name).keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}

	// (a) The seal key, on the leader and on a follower, with each
	// member's certificate behind the self-made CA.
	t.Run("seal key", func(t *testing.T) {
		for _, target := range []string{leader, follower} {
			addr := c.nodes[target].rftAddr
			// Positive control: a member's own certificate gets the key.
			other := leader
			if target == leader {
				other = follower
			}
			var ans rpcAnswer
			testutil.Eventually(t, 30*time.Second, target+" answers a member's seal RPC", func() bool {
				var err error
				ans, err = clusterRPC(addr, genuine(other), "/cluster/v1/seal", struct{}{})
				return err == nil && ans.status == http.StatusOK
			})
			var seal struct {
				Key []byte `json:"key"`
			}
			if err := json.Unmarshal(ans.body, &seal); err != nil || len(seal.Key) != 32 {
				t.Fatalf("control: seal answer from %s is not a key: %v", target, err)
			}
			for _, member := range []string{leader, follower} {
				ans, err := clusterRPC(addr, chainWith(memberDER[member]), "/cluster/v1/seal", struct{}{})
				if err == nil {
					t.Errorf("%s answered the seal RPC to [own CA, %s's certificate]: %d %q", target, member, ans.status, ans.body)
				}
				t.Logf("seal RPC on %s as [own CA, %s]: no answer (%v)", target, member, err)
			}
		}
	})

	// (b) Operations forwarded to the leader as the admin: a key create
	// and a policy write.
	t.Run("forward", func(t *testing.T) {
		addr := ln.rftAddr
		op := enclave.Op{Kind: enclave.OpCreateKey, Enclave: enclave.DefaultEnclave, Name: "chain-control", Identity: c.admin.Identity()}
		ans, err := clusterRPC(addr, genuine(follower), "/cluster/v1/forward", op)
		if err != nil || ans.status != http.StatusOK {
			t.Fatalf("control: forward from the follower's certificate: %v %d %q", err, ans.status, ans.body)
		}
		var res enclave.Result
		if err := json.Unmarshal(ans.body, &res); err != nil || res.Err != nil {
			t.Fatalf("control: forwarded create: %q (%v)", ans.body, err)
		}
		if _, err := admin.DescribeKey(bg, "chain-control"); err != nil {
			t.Fatalf("control: key created through a forward is not there: %v", err)
		}

		for _, forged := range []enclave.Op{
			{Kind: enclave.OpCreateKey, Enclave: enclave.DefaultEnclave, Name: "chain-stolen", Identity: c.admin.Identity()},
			{Kind: enclave.OpWritePolicy, Enclave: enclave.DefaultEnclave, Name: "chain-stolen", Allow: []string{"/v1/*"}, Identity: c.admin.Identity()},
		} {
			for _, member := range []string{leader, follower} {
				ans, err := clusterRPC(addr, chainWith(memberDER[member]), "/cluster/v1/forward", forged)
				if err == nil {
					t.Errorf("leader answered a forwarded %s from [own CA, %s's certificate]: %d %q", forged.Kind, member, ans.status, ans.body)
				}
			}
		}
		for _, id := range []string{leader, follower} {
			cl := c.client(id)
			if _, err := cl.DescribeKey(bg, "chain-stolen"); !errors.Is(err, client.ErrKeyNotFound) {
				t.Errorf("%s: key created by the forged forward: DescribeKey = %v, want %v", id, err, client.ErrKeyNotFound)
			}
			if _, err := cl.DescribePolicy(bg, "chain-stolen"); !errors.Is(err, client.ErrPolicyNotFound) {
				t.Errorf("%s: policy written by the forged forward: DescribePolicy = %v, want %v", id, err, client.ErrPolicyNotFound)
			}
		}
	})

	// (c) Joining: on the cluster port (the join RPC) as a member, and on
	// the API port (POST /v1/cluster/join) as an identity the cluster-nodes
	// policy allows to join.
	t.Run("join", func(t *testing.T) {
		before := len(ln.srv.FSM().Members())
		ownCAID := identity.Of(parseCert(t, ownCADER))
		for _, member := range []string{leader, follower} {
			body := map[string]string{"id": "chain-rpc", "raft_addr": "127.0.0.1:1", "identity": ownCAID}
			if ans, err := clusterRPC(ln.rftAddr, chainWith(memberDER[member]), "/cluster/v1/join", body); err == nil {
				t.Errorf("leader answered a join RPC from [own CA, %s's certificate]: %d %q", member, ans.status, ans.body)
			}
		}

		spareDER := certFileDER(t, c.cert("spare").certFile)
		for _, tc := range []struct {
			id    string
			chain tls.Certificate
		}{
			{"spare", chainWith(spareDER)},
			{"chain-api", chainWith(memberDER[follower])},
		} {
			for _, target := range []string{leader, follower} {
				body := map[string]string{"id": tc.id, "raft_addr": "127.0.0.1:1"}
				st, msg := apiCall(t, c.nodes[target].apiAddr, tc.chain, http.MethodPost, "/v1/cluster/join", body)
				if st != http.StatusBadRequest || msg != "tls: client certificate is required" {
					t.Errorf("%s: join as %s with the attack chain: %d %q, want 400 %q", target, tc.id, st, msg, "tls: client certificate is required")
				}
			}
		}

		// Ground truth: no member recorded, no server added.
		for _, id := range []string{"chain-rpc", "spare", "chain-api"} {
			if m, ok := ln.srv.FSM().Member(id); ok {
				t.Errorf("member %+v was recorded", m)
			}
		}
		if after := len(ln.srv.FSM().Members()); after != before {
			t.Errorf("members: %d before the attack, %d after", before, after)
		}
		if servers, err := ln.srv.Node().Servers(); err != nil || len(servers) != 2 {
			t.Errorf("raft servers after the attack: %v (%v), want 2", servers, err)
		}

		// Positive control: the follower's own certificate alone re-joins
		// (idempotently, with its recorded addresses) through the same route.
		m, ok := ln.srv.FSM().Member(follower)
		if !ok {
			t.Fatalf("follower %s is not a recorded member", follower)
		}
		body := map[string]string{"id": m.ID, "raft_addr": m.RaftAddr, "api_addr": m.APIAddr}
		if st, msg := apiCall(t, ln.apiAddr, genuine(follower), http.MethodPost, "/v1/cluster/join", body); st != http.StatusOK {
			t.Fatalf("control: %s re-joining with its own certificate: %d %q", follower, st, msg)
		}
	})

	// (d) Admin routes on the API port with [own CA, admin certificate].
	t.Run("api admin", func(t *testing.T) {
		adminCert, err := c.admin.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		attack := chainWith(adminCert.Certificate[0])
		for _, target := range []string{leader, follower} {
			addr := c.nodes[target].apiAddr
			// Positive control: the admin's certificate alone.
			if st, msg := apiCall(t, addr, adminCert, http.MethodGet, "/v1/policy/list/", nil); st != http.StatusOK {
				t.Fatalf("control: %s: admin lists policies: %d %q", target, st, msg)
			}
			name := "chain-api-control-" + target
			if st, msg := apiCall(t, addr, adminCert, http.MethodPost, "/v1/key/create/"+name, nil); st != http.StatusOK {
				t.Fatalf("control: %s: admin creates a key: %d %q", target, st, msg)
			}
			if _, err := admin.DescribeKey(bg, name); err != nil {
				t.Fatalf("control: key %s is not there: %v", name, err)
			}

			for _, req := range []struct{ method, path string }{
				{http.MethodPost, "/v1/key/create/chain-api-stolen"},
				{http.MethodGet, "/v1/policy/list/"},
				{http.MethodGet, "/v1/policy/list"},
				{http.MethodPost, "/v1/policy/write/chain-api-stolen"},
			} {
				var body any
				if req.method == http.MethodPost && strings.HasPrefix(req.path, "/v1/policy/") {
					body = map[string][]string{"allow": {"/v1/*"}}
				}
				st, msg := apiCall(t, addr, attack, req.method, req.path, body)
				if st != http.StatusBadRequest || msg != "tls: client certificate is required" {
					t.Errorf("%s: %s %s as [own CA, admin]: %d %q, want 400 %q", target, req.method, req.path, st, msg, "tls: client certificate is required")
				}
			}
		}
		for _, id := range []string{leader, follower} {
			cl := c.client(id)
			if _, err := cl.DescribeKey(bg, "chain-api-stolen"); !errors.Is(err, client.ErrKeyNotFound) {
				t.Errorf("%s: DescribeKey(chain-api-stolen) = %v, want %v", id, err, client.ErrKeyNotFound)
			}
			if _, err := cl.DescribePolicy(bg, "chain-api-stolen"); !errors.Is(err, client.ErrPolicyNotFound) {
				t.Errorf("%s: DescribePolicy(chain-api-stolen) = %v, want %v", id, err, client.ErrPolicyNotFound)
			}
		}
	})
}

// selfMadeCA creates what any stranger can: a self-signed certificate
// marked as CA, and its private key.
func selfMadeCA(t *testing.T) ([]byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "self-made CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !parseCert(t, der).IsCA {
		t.Fatal("self-made CA is not marked as CA")
	}
	return der, key
}

func parseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// certFileDER returns the DER bytes of the PEM certificate in file.
func certFileDER(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.ParseCertificatePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Raw
}

// peerCertificate returns the certificate a TLS server at addr shows,
// handshaking with a throwaway client certificate.
func peerCertificate(t *testing.T, addr string) []byte {
	t.Helper()
	k, err := identity.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	peers := conn.ConnectionState().PeerCertificates
	if len(peers) == 0 {
		t.Fatalf("%s showed no certificate", addr)
	}
	return peers[0].Raw
}

// rpcAnswer is a cluster RPC's HTTP answer.
type rpcAnswer struct {
	status int
	body   []byte
}

// clusterRPC speaks to a cluster port as a node does: TLS with cert, the
// RPC channel byte 'H', then one HTTP/1.1 request. An error means no
// answer came (the connection was refused, closed or timed out).
func clusterRPC(addr string, cert tls.Certificate, path string, body any) (rpcAnswer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("encode: %w", err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("handshake: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return rpcAnswer{}, fmt.Errorf("deadline: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	w := bufio.NewWriter(conn)
	if err := w.WriteByte('H'); err != nil {
		return rpcAnswer{}, fmt.Errorf("write: %w", err)
	}
	if err := req.Write(w); err != nil {
		return rpcAnswer{}, fmt.Errorf("write: %w", err)
	}
	if err := w.Flush(); err != nil {
		return rpcAnswer{}, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("read: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("read body: %w", err)
	}
	return rpcAnswer{status: resp.StatusCode, body: out}, nil
}

// apiCall sends one request to a node's API port presenting cert and
// returns the status and the KES error message (empty on success).
func apiCall(t *testing.T, addr string, cert tls.Certificate, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(bg, method, "https://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	var e struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return resp.StatusCode, string(b)
	}
	return resp.StatusCode, e.Message
}
