// Package awstest is the test harness for the AWS Secrets Manager keystore:
// it runs the kumo AWS emulator (github.com/sivchari/kumo) as a subprocess
// on a free loopback port, and puts a switchable, fault-injecting reverse
// proxy in front of it (added latency, AWS error responses, dropped
// connections, hangs, a "down" mode) that counts calls per operation.
//
// kumo has no RestoreSecret action. The Emulator's endpoint (Emulator.URL)
// is therefore a small front proxy of its own that emulates RestoreSecret
// with kumo's API (see restorer), so that every client of Emulator.URL,
// through a Proxy or not, can schedule a secret for deletion and restore it.
//
// The emulator is never optional: when the kumo binary cannot be found the
// test fails with the command that installs it. Tests share one emulator per
// test binary through Main and Shared, or start their own with NewEmulator.
package awstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// KumoVersion is the emulator version the harness is written against.
const KumoVersion = "v0.33.1"

// InstallCommand installs the kumo emulator binary into $(go env GOPATH)/bin.
const InstallCommand = "GONOSUMDB=github.com/aws/aws-sdk-go-v2/service GOFLAGS=-mod=mod " +
	"go install github.com/sivchari/kumo/cmd/kumo@" + KumoVersion

// startTimeout bounds how long StartEmulator waits for the emulator to answer.
const startTimeout = 30 * time.Second

// Emulator is a running kumo process serving the AWS APIs on 127.0.0.1,
// behind a front proxy that adds RestoreSecret. Its methods are safe for
// concurrent use.
type Emulator struct {
	// URL is the emulator's endpoint, e.g. "http://127.0.0.1:40123": the
	// front proxy, which passes every call on to kumo except the ones it
	// emulates. RestoreSecret is emulated by this wrapper because kumo
	// lacks it: a DeleteSecret with a recovery window keeps the secret's
	// value, and RestoreSecret re-creates the secret from it (see restorer
	// for the details and the differences from AWS). Point clients here.
	URL string
	// KumoURL is kumo's own endpoint. Calls made there bypass the
	// RestoreSecret emulation: a secret scheduled for deletion there cannot
	// be restored.
	KumoURL string

	front    *Proxy    // serves URL
	restore  *restorer // the front's RestoreSecret emulation
	cmd      *exec.Cmd
	out      *limitedBuffer
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // set before exited is closed
	stopOnce sync.Once
}

// FindKumo locates the kumo binary: $KUMO_BIN, then "kumo" on $PATH, then
// $(go env GOPATH)/bin/kumo. When there is none (and KUMO_BIN is unset) it
// installs it once with InstallCommand, so that `go test ./...` works on a
// fresh machine that reaches the Go module proxy. It returns an error
// naming InstallCommand when that fails too.
func FindKumo() (string, error) {
	p, err := findKumo()
	if err == nil || os.Getenv("KUMO_BIN") != "" {
		return p, err
	}
	installOnce.Do(func() { installErr = installKumo() })
	if installErr != nil {
		return "", fmt.Errorf("%w\n(automatic install failed: %w)", err, installErr)
	}
	return findKumo()
}

var (
	installOnce sync.Once
	installErr  error
)

// installKumo runs InstallCommand; it takes a few minutes on a cold cache.
func installKumo() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/sivchari/kumo/cmd/kumo@"+KumoVersion)
	cmd.Dir = os.TempDir() // outside any module, so go.mod is not consulted
	cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/aws/aws-sdk-go-v2/service", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", InstallCommand, err, bytes.TrimSpace(out))
	}
	return nil
}

func findKumo() (string, error) {
	if p := os.Getenv("KUMO_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("awstest: KUMO_BIN=%q is not an executable file", p)
	}
	if p, err := exec.LookPath("kumo"); err == nil {
		return p, nil
	}
	if gopath := goPath(); gopath != "" {
		for _, dir := range filepath.SplitList(gopath) {
			p := filepath.Join(dir, "bin", "kumo")
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("awstest: the kumo AWS emulator was not found (looked at $KUMO_BIN, $PATH, "+
		"$(go env GOPATH)/bin); install it with:\n\t%s", InstallCommand)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// goPath returns $(go env GOPATH), falling back to $GOPATH and ~/go.
func goPath() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := strings.TrimSpace(string(out)); p != "" {
			return p
		}
	}
	if p := os.Getenv("GOPATH"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go")
	}
	return ""
}

// StartEmulator starts kumo on a free 127.0.0.1 port and waits until its
// Secrets Manager API answers. It retries with a new port if the chosen one
// was taken in the meantime. The caller must call Stop.
func StartEmulator(ctx context.Context) (*Emulator, error) {
	bin, err := FindKumo()
	if err != nil {
		return nil, err
	}
	var errs []error
	for range 3 {
		e, err := startOnce(ctx, bin)
		if err == nil {
			return e, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func startOnce(ctx context.Context, bin string) (*Emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		KumoURL: "http://127.0.0.1:" + strconv.Itoa(port),
		out:     &limitedBuffer{max: 64 << 10},
		exited:  make(chan struct{}),
	}
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = emulatorEnv()
	cmd.Stdout = e.out
	cmd.Stderr = e.out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("awstest: start %s: %w", bin, err)
	}
	e.cmd = cmd
	go func() {
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	if err := e.waitReady(ctx); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("%w; emulator output:\n%s", err, e.Output())
	}
	e.restore = newRestorer(e.KumoURL)
	if e.front, err = newProxy(e.KumoURL, e.restore); err != nil {
		_ = e.Stop()
		return nil, err
	}
	e.URL = e.front.URL
	return e, nil
}

// emulatorEnv is the parent environment without kumo settings that would
// change the bind address or make the emulator persist state to disk.
func emulatorEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUMO_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KUMO_LOG_LEVEL=warn")
}

// freePort asks the OS for a free loopback port. The port is released before
// kumo binds it; StartEmulator retries if another process wins the race.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("awstest: pick a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls kumo until a ListSecrets call succeeds, the process exits,
// or startTimeout / ctx ends.
func (e *Emulator) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = Ping(ctx, client, e.KumoURL); lastErr == nil {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("awstest: kumo exited before it was ready: %v", e.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("awstest: kumo at %s not ready: %w (last error: %v)", e.KumoURL, ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// Ping makes one unsigned Secrets Manager ListSecrets call against endpoint
// and returns nil if it answers 200 OK.
func Ping(ctx context.Context, client *http.Client, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader(`{"MaxResults":1}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.ListSecrets")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("awstest: ListSecrets answered %s", resp.Status)
	}
	return nil
}

// Stop closes the front proxy, kills kumo and waits for it to exit. It is
// idempotent.
func (e *Emulator) Stop() error {
	e.stopOnce.Do(func() {
		if e.front != nil {
			e.front.close()
			e.restore.close()
		}
		_ = e.cmd.Process.Kill()
	})
	select {
	case <-e.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("awstest: kumo (pid %d) did not exit after kill", e.cmd.Process.Pid)
	}
}

// Exited reports whether the emulator process has exited.
func (e *Emulator) Exited() bool {
	select {
	case <-e.exited:
		return true
	default:
		return false
	}
}

// Output returns the emulator's recent stdout/stderr (up to 64 KiB).
func (e *Emulator) Output() string { return e.out.String() }

// NewEmulator starts a dedicated emulator for t and stops it in t.Cleanup.
// It fails t (never skips) if the emulator cannot be found or started.
func NewEmulator(t testing.TB) *Emulator {
	t.Helper()
	e, err := StartEmulator(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})
	return e
}

var shared struct {
	once sync.Once
	emu  *Emulator
	err  error
}

// Shared returns the test binary's shared emulator, starting it on first use.
// Tests using it must isolate themselves (for example with a unique name
// prefix). It fails t if the emulator cannot be found or started. Call Main
// from TestMain so that the emulator is stopped when the tests end.
func Shared(t testing.TB) *Emulator {
	t.Helper()
	shared.once.Do(func() {
		shared.emu, shared.err = StartEmulator(context.Background())
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	if shared.emu.Exited() {
		t.Fatalf("awstest: the shared kumo emulator has exited: %v; output:\n%s",
			shared.emu.waitErr, shared.emu.Output())
	}
	return shared.emu
}

// Main runs the tests and then stops the shared emulator, if one was started.
// Use it as: func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.emu != nil {
		if err := shared.emu.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// limitedBuffer keeps the last max bytes written to it; safe for concurrent use.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
