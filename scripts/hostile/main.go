//go:build linux

// Command hostile reproduces the hostile-client measurements of issue 10
// against one real keyraft process over TLS on loopback and prints heap,
// RSS and latency figures for each attack:
//
//   - stalled: requests that announce a 1,000,000-byte body and send nothing
//     (HTTP/2, many streams per connection);
//   - slow: request bodies sent one byte per second over HTTP/1.1 and HTTP/2,
//     and when the server cuts them;
//   - flood: HTTP/2 connections that send PING and SETTINGS frames as fast as
//     they can and never read;
//   - reset: HTTP/2 rapid reset (HEADERS then RST_STREAM, over and over)
//     while a normal client measures its p99 latency;
//   - settle: RSS a while after the attacks ended.
//
// Usage (see scripts/hostile.sh, which builds the binary):
//
//	go run ./scripts/hostile -bin ./keyraft [-limits 'max_connections: 512']
//
// It is bounded in count and time; every attack has its own flag. The node
// runs in a temporary directory that is removed at exit. Linux only (RSS is
// read from /proc).
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyraft/keyraft/internal/identity"
)

type options struct {
	bin                    string
	limits                 string
	stalled                int
	slowH1, slowH2         int
	slowWatch              time.Duration
	floodConns             int
	floodTime              time.Duration
	resetConns             int
	resetTime, normalTime  time.Duration
	settle                 time.Duration
	keep                   bool
	pprof                  string
	normalWorkers          int
	stalledWait            time.Duration
	stalledHold            time.Duration
	stalledConns           int
	only                   string
	adminCert, attackCert  tls.Certificate
	attackKey              string
	child, childAddr       string
	endpoint, addr, tmpDir string
	pid                    int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "keyraft binary (required)")
	flag.StringVar(&o.limits, "limits", "", "YAML body of the config's limits: section, e.g. 'max_connections: 512'")
	flag.IntVar(&o.stalled, "stalled", 1000, "stalled 1 MB bodies (HTTP/2)")
	flag.DurationVar(&o.stalledWait, "stalled-wait", 20*time.Second, "how long to wait for the stalled requests to arrive")
	flag.IntVar(&o.stalledConns, "stalled-conns", 0, "connections the stalled requests may use; 0: as many as Go's client dials (one per request until HTTP/2 is known)")
	flag.DurationVar(&o.stalledHold, "stalled-hold", 0, "keep the stalled requests in flight this much longer after sampling (to profile the node with -pprof)")
	flag.IntVar(&o.slowH1, "slow-h1", 500, "HTTP/1.1 connections sending one body byte per second")
	flag.IntVar(&o.slowH2, "slow-h2", 500, "HTTP/2 streams sending one body byte per second")
	flag.DurationVar(&o.slowWatch, "slow-watch", 25*time.Second, "how long to keep the slow bodies going")
	flag.IntVar(&o.floodConns, "flood-conns", 64, "PING/SETTINGS flooding connections")
	flag.DurationVar(&o.floodTime, "flood-time", 10*time.Second, "flood duration")
	flag.IntVar(&o.resetConns, "reset-conns", 8, "rapid-reset connections")
	flag.DurationVar(&o.resetTime, "reset-time", 10*time.Second, "rapid-reset duration")
	flag.DurationVar(&o.normalTime, "normal-time", 5*time.Second, "idle p99 measurement duration")
	flag.IntVar(&o.normalWorkers, "normal-workers", 4, "concurrent normal clients")
	flag.DurationVar(&o.settle, "settle", time.Minute, "wait after the attacks before the last RSS reading")
	flag.StringVar(&o.only, "only", "", "comma-separated subset of stalled,slow,flood,reset")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.StringVar(&o.pprof, "pprof", "", "start the node with --pprof on this loopback address (to profile it under attack)")
	flag.StringVar(&o.child, "child", "", "internal: run as the attacker process of this attack")
	flag.StringVar(&o.childAddr, "child-addr", "", "internal: the node's API address")
	flag.StringVar(&o.attackKey, "child-key", "", "internal: the attacker's API key")
	flag.Parse()
	if o.child == "reset" {
		k, err := identity.ParseAPIKey(o.attackKey)
		if err == nil {
			o.attackCert, err = k.Certificate()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostile:", err)
			os.Exit(1)
		}
		o.addr = o.childAddr
		o.resetAttack()
		return
	}
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "hostile: -bin is required")
		os.Exit(2)
	}
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func (o *options) enabled(name string) bool {
	if o.only == "" {
		return true
	}
	for _, s := range strings.Split(o.only, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

func run(o *options) error {
	dir, err := os.MkdirTemp("", "keyraft-hostile-")
	if err != nil {
		return err
	}
	o.tmpDir = dir
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	cmd, err := o.startNode()
	if err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	admin := o.client(o.adminCert, true)
	if err := o.call(admin, http.MethodPost, "/v1/key/create/k", ""); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	idle := o.sample(admin)
	fmt.Printf("idle:      heap %s  rss %s\n", mb(idle.heap), mb(idle.rss))
	peak := idle

	if o.enabled("stalled") {
		s, err := o.stalledBodies(admin)
		if err != nil {
			return err
		}
		fmt.Printf("stalled:   %d of %d requests announcing 1,000,000 bytes in flight: heap %s (+%s)  rss %s (+%s)\n",
			s.arrived, o.stalled, mb(s.heap), mb(s.heap-idle.heap), mb(s.rss), mb(s.rss-idle.rss))
		peak = peak.max(s.sample)
	}
	if o.enabled("slow") {
		r, err := o.slowBodies(admin)
		if err != nil {
			return err
		}
		fmt.Printf("slow h1:   %d conns: %d cut by the server within %v (median %v, max %v); rss peak %s (+%s)\n",
			o.slowH1, r.h1.cut, o.slowWatch, r.h1.median(), r.h1.maxCut(), mb(r.peak.rss), mb(r.peak.rss-idle.rss))
		fmt.Printf("slow h2:   %d streams: %d cut by the server within %v (median %v, max %v)\n",
			o.slowH2, r.h2.cut, o.slowWatch, r.h2.median(), r.h2.maxCut())
		peak = peak.max(r.peak)
	}
	if o.enabled("flood") {
		f := o.flood(admin)
		fmt.Printf("flood:     %d conns for %v: %d frames sent, %d reconnects; rss peak %s (+%s) heap peak %s\n",
			o.floodConns, o.floodTime, f.frames, f.reconnects, mb(f.peak.rss), mb(f.peak.rss-idle.rss), mb(f.peak.heap))
		peak = peak.max(f.peak)
	}
	if o.enabled("reset") {
		before := o.served(admin)
		r, err := o.rapidReset(admin)
		if err != nil {
			return err
		}
		fmt.Printf("reset:     normal p99 idle %v (n=%d, errors %d) -> under attack %v (n=%d, errors %d); %d streams reset, %d reconnects; rss peak %s (+%s)\n",
			r.idleP99, r.idleN, r.idleErr, r.attackP99, r.attackN, r.attackErr, r.streams, r.reconnects, mb(r.peak.rss), mb(r.peak.rss-idle.rss))
		fmt.Printf("           requests the node served meanwhile (by status): %v\n", diff(before, o.served(admin)))
		peak = peak.max(r.peak)
	}
	after := o.sample(admin)
	fmt.Printf("after:     heap %s  rss %s (peak rss %s); waiting %v\n", mb(after.heap), mb(after.rss), mb(peak.rss), o.settle)
	time.Sleep(o.settle)
	settled := o.sample(admin)
	fmt.Printf("settled:   heap %s  rss %s (+%s over idle) %v after the attacks\n", mb(settled.heap), mb(settled.rss), mb(settled.rss-idle.rss), o.settle)
	return nil
}

// startNode writes a config and starts the keyraft process.
func (o *options) startNode() (*exec.Cmd, error) {
	admin, err := identity.GenerateAPIKey(nil)
	if err != nil {
		return nil, err
	}
	attacker, err := identity.GenerateAPIKey(nil)
	if err != nil {
		return nil, err
	}
	if o.adminCert, err = admin.Certificate(); err != nil {
		return nil, err
	}
	o.attackKey = attacker.String()
	if o.attackCert, err = attacker.Certificate(); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, der, err := identity.SelfSigned(key, identity.CertOptions{
		Subject: "localhost", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		Expiry: 24 * time.Hour, ServerAuth: true, ClientAuth: true,
	})
	if err != nil {
		return nil, err
	}
	keyPEM, err := identity.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(o.tmpDir, "server.cert"), filepath.Join(o.tmpDir, "server.key")
	if err := os.WriteFile(certFile, identity.EncodeCertificatePEM(der), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	raftPort, err := freePort()
	if err != nil {
		return nil, err
	}
	o.addr = "127.0.0.1:" + strconv.Itoa(apiPort)
	o.endpoint = "https://" + o.addr
	var b strings.Builder
	fmt.Fprintf(&b, "version: v1\naddress: %s\nadmin:\n  identity: %s\n", o.addr, admin.Identity())
	fmt.Fprintf(&b, "tls:\n  key: %s\n  cert: %s\n", keyFile, certFile)
	fmt.Fprintf(&b, "policy:\n  attacker:\n    allow: [/v1/key/generate/*, /v1/key/describe/*, /v1/status]\n    identities: [%s]\n", attacker.Identity())
	fmt.Fprintf(&b, "log:\n  error: error\n  audit: off\n")
	fmt.Fprintf(&b, "keystore:\n  fs:\n    path: %s\n", filepath.Join(o.tmpDir, "keystore"))
	fmt.Fprintf(&b, "cluster:\n  node_id: hostile\n  data_dir: %s\n  raft_address: 127.0.0.1:%d\n  bootstrap: true\n", filepath.Join(o.tmpDir, "data"), raftPort)
	if o.limits != "" {
		b.WriteString("limits:\n")
		for _, l := range strings.Split(o.limits, "\n") {
			b.WriteString("  " + l + "\n")
		}
	}
	cfgFile := filepath.Join(o.tmpDir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(o.tmpDir, "node.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"server", "--config", cfgFile}
	if o.pprof != "" {
		args = append(args, "--pprof", o.pprof)
	}
	cmd := exec.Command(o.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	logFile.Close()
	o.pid = cmd.Process.Pid
	admin2 := o.client(o.adminCert, true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := o.call(admin2, http.MethodGet, "/v1/status", ""); err == nil {
			return cmd, nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			log, _ := os.ReadFile(filepath.Join(o.tmpDir, "node.log"))
			return nil, fmt.Errorf("node not serving: %w\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond) // polling the process's readiness
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// client returns an HTTP client presenting cert; h2 selects HTTP/2.
func (o *options) client(cert tls.Certificate, h2 bool) *http.Client {
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}} //nolint:gosec // self-signed test node
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// call sends one request and fails unless the answer is 200.
func (o *options) call(c *http.Client, method, path, body string) error {
	req, err := http.NewRequest(method, o.endpoint+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

type sample struct{ heap, rss int64 }

func (s sample) max(t sample) sample {
	return sample{heap: max(s.heap, t.heap), rss: max(s.rss, t.rss)}
}

// sample reads the node's Go heap (GET /v1/status mem_heap_used) and its
// RSS (/proc/<pid>/status VmRSS). A failed read leaves the field -1.
func (o *options) sample(c *http.Client) sample {
	s := sample{heap: -1, rss: rss(o.pid)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.endpoint+"/v1/status", nil)
	resp, err := c.Do(req)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	var st struct {
		Heap int64 `json:"mem_heap_used"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) == nil {
		s.heap = st.Heap
	}
	return s
}

// activeRequests reads kes_http_request_active from /v1/metrics.
func (o *options) activeRequests(c *http.Client) (int, error) {
	resp, err := c.Get(o.endpoint + "/v1/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "kes_http_request_active "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, errors.New("no kes_http_request_active in /v1/metrics")
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

func mb(n int64) string {
	if n < 0 && n > -1<<20 {
		return "0 MB"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

// served reads the kes_http_request_{success,error,failure} counters.
func (o *options) served(c *http.Client) map[string]float64 {
	m := map[string]float64{}
	resp, err := c.Get(o.endpoint + "/v1/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "kes_http_request_") || strings.HasPrefix(l, "kes_http_request_active") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			m[strings.TrimPrefix(l[:i], "kes_http_request_")] = v
		}
	}
	return m
}

func diff(a, b map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range b {
		if v-a[k] != 0 {
			d[k] = v - a[k]
		}
	}
	return d
}
