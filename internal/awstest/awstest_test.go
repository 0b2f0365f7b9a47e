package awstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyraft/keyraft/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// call makes one unsigned Secrets Manager call through endpoint and returns
// the status and body.
func call(t *testing.T, client *http.Client, endpoint, op, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager."+op)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestFindKumoHonoursKUMO_BIN(t *testing.T) {
	t.Setenv("KUMO_BIN", "/nonexistent/kumo")
	_, err := FindKumo()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kumo") {
		t.Fatalf("FindKumo with a bad KUMO_BIN = %v, want an error naming it", err)
	}
}

func TestEmulatorAndProxy(t *testing.T) {
	emu := Shared(t)
	p := NewProxy(t, emu.URL)
	client := &http.Client{Timeout: 5 * time.Second}

	// Forwarding and counting.
	if code, body, err := call(t, client, p.URL, "CreateSecret", `{"Name":"awstest-a","SecretString":"x"}`); err != nil || code != 200 {
		t.Fatalf("CreateSecret via proxy = %d %q %v", code, body, err)
	}
	if code, body, err := call(t, client, p.URL, "GetSecretValue", `{"SecretId":"awstest-a"}`); err != nil || code != 200 ||
		!strings.Contains(body, `"SecretString":"x"`) {
		t.Fatalf("GetSecretValue via proxy = %d %q %v", code, body, err)
	}
	if p.Calls("CreateSecret") != 1 || p.Calls("GetSecretValue") != 1 || p.Calls("") != 2 {
		t.Fatalf("counts: create %d get %d all %d", p.Calls("CreateSecret"), p.Calls("GetSecretValue"), p.Calls(""))
	}

	// An injected AWS error, for one operation and a limited number of calls.
	p.Inject("GetSecretValue", 1, Throttle())
	code, body, err := call(t, client, p.URL, "GetSecretValue", `{"SecretId":"awstest-a"}`)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if err != nil || code != http.StatusBadRequest || e.Type != "ThrottlingException" || e.Message != "Rate exceeded" {
		t.Fatalf("throttled call = %d %q %v", code, body, err)
	}
	if code, _, err := call(t, client, p.URL, "GetSecretValue", `{"SecretId":"awstest-a"}`); err != nil || code != 200 {
		t.Fatalf("call after the injected fault = %d %v", code, err)
	}

	// A fault after forwarding: the call takes effect, the answer is lost.
	p.Inject("DeleteSecret", 1, Drop().AfterForward())
	if _, _, err := call(t, client, p.URL, "DeleteSecret", `{"SecretId":"awstest-a","ForceDeleteWithoutRecovery":true}`); err == nil {
		t.Fatal("dropped DeleteSecret returned an answer")
	}
	if code, _, err := call(t, client, emu.URL, "GetSecretValue", `{"SecretId":"awstest-a"}`); err != nil || code != http.StatusNotFound {
		t.Fatalf("GetSecretValue after the forwarded delete = %d %v, want 404", code, err)
	}

	// Every k-th call.
	p.InjectEvery("ListSecrets", 3, ServerError())
	var failed int
	for range 9 {
		if code, _, _ := call(t, client, p.URL, "ListSecrets", `{}`); code == http.StatusInternalServerError {
			failed++
		}
	}
	if failed != 3 {
		t.Fatalf("InjectEvery(3) failed %d of 9 calls, want 3", failed)
	}
	p.Clear()

	// A hang holds the call until released.
	injected := p.Injected()
	p.Inject("", 1, Hang())
	done := make(chan error, 1)
	go func() {
		_, _, err := call(t, client, p.URL, "ListSecrets", `{}`)
		done <- err
	}()
	waitFor(t, func() bool { return p.Injected() > injected })
	select {
	case err := <-done:
		t.Fatalf("hung call returned before release: %v", err)
	default:
	}
	p.ReleaseHangs()
	if err := <-done; err == nil {
		t.Fatal("released hung call got an answer, want a closed connection")
	}

	// Latency.
	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	if code, _, err := call(t, client, p.URL, "ListSecrets", `{}`); err != nil || code != 200 {
		t.Fatalf("call with latency = %d %v", code, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("call with 100ms latency took %v", d)
	}
	p.SetLatency(0)

	// Down mode refuses service; leaving it restores it.
	p.SetDown(true)
	if _, _, err := call(t, client, p.URL, "ListSecrets", `{}`); err == nil {
		t.Fatal("call in down mode got an answer")
	}
	p.SetDown(false)
	if err := Ping(context.Background(), client, p.URL); err != nil {
		t.Fatalf("Ping after down mode: %v", err)
	}
}

// TestProxyForwardsLargeAnswersWhole: answers too large for one write
// (ListSecrets pages of 100 secrets, sent chunked) reach the client whole
// on every call. Forwarding the inbound request body as it is lost the end
// of a few percent of them (golang/go#40747).
func TestProxyForwardsLargeAnswersWhole(t *testing.T) {
	emu := Shared(t)
	p := NewProxy(t, emu.URL)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 120 {
		body := fmt.Sprintf(`{"Name":"awstest-large-%03d","SecretString":"%s"}`, i, strings.Repeat("v", 200))
		if code, resp, err := call(t, client, emu.URL, "CreateSecret", body); err != nil || code != 200 {
			t.Fatalf("CreateSecret = %d %q %v", code, resp, err)
		}
	}
	for i := range 500 {
		code, body, err := call(t, client, p.URL, "ListSecrets", `{"MaxResults":100}`)
		var page struct{ SecretList []json.RawMessage }
		if err == nil {
			err = json.Unmarshal([]byte(body), &page)
		}
		if err != nil || code != 200 || len(page.SecretList) != 100 {
			t.Fatalf("call %d: ListSecrets through the proxy = %d, %d bytes, %d secrets, %v", i, code, len(body), len(page.SecretList), err)
		}
	}
}

func TestNewEmulatorStops(t *testing.T) {
	var emu *Emulator
	t.Run("start", func(t *testing.T) {
		emu = NewEmulator(t)
		if err := Ping(context.Background(), http.DefaultClient, emu.URL); err != nil {
			t.Fatal(err)
		}
	})
	// The subtest's cleanup stopped it.
	if !emu.Exited() {
		t.Fatal("emulator still running after its test ended")
	}
	if err := Ping(context.Background(), &http.Client{Timeout: time.Second}, emu.URL); err == nil {
		t.Fatal("stopped emulator still answers")
	}
	if err := emu.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "condition", cond)
}
