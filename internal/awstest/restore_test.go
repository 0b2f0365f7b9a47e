package awstest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sm makes Secrets Manager calls for one test and decodes the answers.
type sm struct {
	t      *testing.T
	client *http.Client
}

// do calls op at endpoint with body and fails t unless the answer has
// status want; it returns the decoded JSON answer.
func (c sm) do(endpoint, op, body string, want int) map[string]any {
	c.t.Helper()
	code, resp, err := call(c.t, c.client, endpoint, op, body)
	if err != nil || code != want {
		c.t.Fatalf("%s %s = %d %q %v; want %d", op, body, code, resp, err, want)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp), &out); err != nil {
		c.t.Fatalf("%s answer %q: %v", op, resp, err)
	}
	return out
}

// fails calls op and fails t unless it answers an AWS error of type code
// whose message contains msg.
func (c sm) fails(endpoint, op, body, code, msg string) {
	c.t.Helper()
	status, resp, err := call(c.t, c.client, endpoint, op, body)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal([]byte(resp), &e)
	if err != nil || status < 400 || status >= 500 || e.Type != code || !strings.Contains(e.Message, msg) {
		c.t.Fatalf("%s %s = %d %q %v; want a %s error containing %q", op, body, status, resp, err, code, msg)
	}
}

func randomName(t *testing.T, what string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "awstest-" + what + "-" + hex.EncodeToString(b[:])
}

func TestRestoreSecretEmulation(t *testing.T) {
	emu := Shared(t)
	p := NewProxy(t, emu.URL)
	c := sm{t, &http.Client{Timeout: 5 * time.Second}}
	id := func(name string) string { return fmt.Sprintf(`{"SecretId":%q}`, name) }

	// A text secret with metadata, scheduled for deletion through a Proxy.
	text := randomName(t, "text")
	c.do(p.URL, "CreateSecret", fmt.Sprintf(`{"Name":%q,"SecretString":"v1","Description":"d","KmsKeyId":"alias/k",`+
		`"Tags":[{"Key":"a","Value":"b"}]}`, text), 200)
	before := c.do(p.URL, "DescribeSecret", id(text), 200)
	p.Record("DeleteSecret")
	window := fmt.Sprintf(`{"SecretId":%q,"RecoveryWindowInDays":7}`, text)
	c.do(p.URL, "DeleteSecret", window, 200)
	if got := p.Requests("DeleteSecret"); len(got) != 1 || string(got[0]) != window {
		t.Fatalf("recorded DeleteSecret bodies = %q, want [%s]", got, window)
	}
	c.fails(p.URL, "GetSecretValue", id(text), codeInvalidRequest, "scheduled for deletion")
	if d := c.do(p.URL, "DescribeSecret", id(text), 200); d["DeletedDate"] == nil {
		t.Fatalf("DescribeSecret of a scheduled secret = %v, want a DeletedDate", d)
	}
	list := c.do(p.URL, "ListSecrets", `{"MaxResults":100}`, 200)
	if b, _ := json.Marshal(list); strings.Contains(string(b), text) {
		t.Fatalf("ListSecrets lists the scheduled secret: %s", b)
	}
	// As on AWS (kumo would accept these):
	c.fails(p.URL, "DeleteSecret", window, codeInvalidRequest, "marked for deletion")
	c.fails(p.URL, "DeleteSecret", fmt.Sprintf(`{"SecretId":%q,"RecoveryWindowInDays":6}`, text), codeInvalidParameter, "between 7 and 30")
	c.fails(p.URL, "DeleteSecret", fmt.Sprintf(`{"SecretId":%q,"RecoveryWindowInDays":31}`, text), codeInvalidParameter, "between 7 and 30")
	c.fails(p.URL, "DeleteSecret", fmt.Sprintf(`{"SecretId":%q,"RecoveryWindowInDays":7,"ForceDeleteWithoutRecovery":true}`, text),
		codeInvalidParameter, "in conjunction")
	if n := len(p.Requests("DeleteSecret")); n != 5 {
		t.Fatalf("%d DeleteSecret bodies recorded, want 5", n)
	}

	// Restored: value and metadata are back; the answer is AWS's.
	out := c.do(p.URL, "RestoreSecret", id(text), 200)
	if out["Name"] != text || !strings.Contains(fmt.Sprint(out["ARN"]), ":secret:"+text+"-") {
		t.Fatalf("RestoreSecret = %v, want the secret's ARN and Name", out)
	}
	if v := c.do(p.URL, "GetSecretValue", id(text), 200); v["SecretString"] != "v1" {
		t.Fatalf("GetSecretValue after RestoreSecret = %v", v)
	}
	after := c.do(p.URL, "DescribeSecret", id(text), 200)
	for _, k := range []string{"Description", "KmsKeyId", "Tags"} {
		if fmt.Sprint(after[k]) != fmt.Sprint(before[k]) {
			t.Errorf("after restore %s = %v, want %v", k, after[k], before[k])
		}
	}
	if after["DeletedDate"] != nil || after["ARN"] != out["ARN"] {
		t.Errorf("DescribeSecret after restore = %v", after)
	}
	// Restoring a secret that is not scheduled succeeds and changes nothing.
	if again := c.do(p.URL, "RestoreSecret", id(text), 200); again["ARN"] != out["ARN"] || again["Name"] != text {
		t.Fatalf("RestoreSecret of a live secret = %v, want %v", again, out)
	}
	// Unknown secret: ResourceNotFoundException.
	c.fails(p.URL, "RestoreSecret", id(randomName(t, "missing")), "ResourceNotFoundException", "")
	c.fails(p.URL, "RestoreSecret", `{}`, codeInvalidParameter, "SecretId")

	p.ResetCalls()
	if got := p.Requests("DeleteSecret"); len(got) != 0 {
		t.Fatalf("ResetCalls kept %d bodies", len(got))
	}

	// A binary secret, without the Proxy (the emulation is at Emulator.URL),
	// with AWS's default window; the restore's answer is lost once.
	bin := randomName(t, "bin")
	raw := []byte{0, 1, 0xfe, 0xff}
	c.do(emu.URL, "CreateSecret", fmt.Sprintf(`{"Name":%q,"SecretBinary":%q}`, bin, base64.StdEncoding.EncodeToString(raw)), 200)
	c.do(emu.URL, "DeleteSecret", id(bin), 200)
	p.Inject("RestoreSecret", 1, Drop().AfterForward())
	if _, _, err := call(t, c.client, p.URL, "RestoreSecret", id(bin)); err == nil {
		t.Fatal("dropped RestoreSecret returned an answer")
	}
	if v := c.do(emu.URL, "GetSecretValue", id(bin), 200); v["SecretBinary"] != base64.StdEncoding.EncodeToString(raw) || v["SecretString"] != nil {
		t.Fatalf("GetSecretValue of the restored binary secret = %v", v)
	}
	c.do(p.URL, "RestoreSecret", id(bin), 200) // the retry: no longer scheduled

	// Scheduled, then force-deleted: gone for good.
	c.do(emu.URL, "DeleteSecret", id(bin), 200)
	c.do(emu.URL, "DeleteSecret", fmt.Sprintf(`{"SecretId":%q,"ForceDeleteWithoutRecovery":true}`, bin), 200)
	c.fails(emu.URL, "RestoreSecret", id(bin), "ResourceNotFoundException", bin)
	emu.restore.mu.Lock()
	_, kept := emu.restore.kept[bin]
	emu.restore.mu.Unlock()
	if kept {
		t.Error("the force-deleted secret's value is still kept")
	}

	// Scheduled directly in kumo, past the emulation: cannot be restored.
	direct := randomName(t, "direct")
	c.do(emu.KumoURL, "CreateSecret", fmt.Sprintf(`{"Name":%q,"SecretString":"x"}`, direct), 200)
	c.do(emu.KumoURL, "DeleteSecret", id(direct), 200)
	c.fails(emu.URL, "RestoreSecret", id(direct), codeInvalidRequest, "directly in kumo")
	c.fails(emu.KumoURL, "RestoreSecret", id(direct), "InvalidAction", "") // kumo itself lacks it
}
