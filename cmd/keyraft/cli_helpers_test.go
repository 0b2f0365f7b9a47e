package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/identity"
	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/internal/testutil"
)

// cliServer is an in-process Keyraft node for the CLI tests.
type cliServer struct {
	addr     string          // host:port of the API
	adminKey identity.APIKey // the admin's API key
	certFile string          // the server certificate (a CA for --ca)
}

// startCLIServer starts a one-node dev cluster in a temporary directory on
// OS-chosen ports. mutate, if not nil, edits the config before the start.
func startCLIServer(t *testing.T, mutate func(*config.Config)) cliServer {
	t.Helper()
	cfg, key, err := server.DevConfig(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("DevConfig: %v", err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	apiLn := testutil.Listen(t)
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		apiLn.Close()
		t.Fatal(err)
	}
	srv, err := server.Start(context.Background(), cfg, server.Options{
		APIListener: apiLn, RaftListener: raftLn, AuditOut: io.Discard,
	})
	if err != nil {
		apiLn.Close()
		raftLn.Close()
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server.Close: %v", err)
		}
	})
	return cliServer{addr: srv.Addr().String(), adminKey: key, certFile: cfg.TLS.Cert}
}

// clientEnv lists every environment variable the client commands read.
var clientEnv = [][]string{envServer, envAPIKey, envKeyFile, envCert, envCA, envEnclave}

// clearClientEnv blanks the client environment variables for the test, so
// that the caller's environment cannot leak into it (blank = unset).
func clearClientEnv(t *testing.T) {
	t.Helper()
	for _, names := range clientEnv {
		for _, n := range names {
			t.Setenv(n, "")
		}
	}
}

// adminArgs returns the flags that connect to s as the admin.
func (s cliServer) adminArgs() []string {
	return []string{"-k", "--server", s.addr, "-a", s.adminKey.String()}
}

// cliResult is the outcome of one in-process command run.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runCLI runs the keyraft command line in-process with non-terminal output
// (so JSON unless a command prints bare values).
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	return runCLIOut(t, &out, &errOut, args...)
}

// runCLITerminal runs the command line with stdout pretending to be a
// terminal (human-readable output).
func runCLITerminal(t *testing.T, args ...string) cliResult {
	t.Helper()
	var errOut bytes.Buffer
	return runCLIOut(t, &termBuffer{}, &errOut, args...)
}

func runCLIOut(t *testing.T, out, errOut io.Writer, args ...string) cliResult {
	t.Helper()
	return runCLICtx(context.Background(), out, errOut, args...)
}

// runCLICtx runs the command line with ctx as the command context.
func runCLICtx(ctx context.Context, out, errOut io.Writer, args ...string) cliResult {
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return cliResult{stdout: asString(out), stderr: asString(errOut), err: err}
}

func asString(w io.Writer) string {
	if s, ok := w.(interface{ String() string }); ok {
		return s.String()
	}
	return ""
}

// mustRun runs the command line and fails the test on an error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, args...)
	if r.err != nil {
		t.Fatalf("keyraft %s: %v (stderr %q)", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// mustJSON runs the command line and decodes its stdout into v.
func mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustRun(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("keyraft %s: output %q is not the expected JSON: %v", strings.Join(args, " "), out, err)
	}
}

// wantErr runs the command line and fails the test unless it fails with an
// error containing want.
func wantErr(t *testing.T, want string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, args...)
	if r.err == nil {
		t.Fatalf("keyraft %s succeeded (stdout %q), want an error containing %q", strings.Join(args, " "), r.stdout, want)
	}
	if !strings.Contains(r.err.Error(), want) {
		t.Fatalf("keyraft %s: error %q does not contain %q", strings.Join(args, " "), r.err, want)
	}
	return r
}

// termBuffer is a buffer that claims to be a terminal.
type termBuffer struct{ bytes.Buffer }

func (*termBuffer) IsTerminal() bool { return true }

// notifyBuffer is a goroutine-safe buffer that signals every write.
type notifyBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{writes: make(chan struct{}, 1)} }

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.writes <- struct{}{}:
	default:
	}
	return n, err
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
