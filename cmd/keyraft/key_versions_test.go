package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/internal/crypto"
)

// TestKeyVersionsCLI: key rotate, key rewrap (stdin to stdout),
// key min-version and the versions in key info.
func TestKeyVersionsCLI(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	run := func(args ...string) []string { return append(args, s.adminArgs()...) }
	mustRun(t, run("key", "create", "rot")...)
	var enc struct {
		Ciphertext string `json:"ciphertext"`
	}
	mustJSON(t, &enc, run("key", "encrypt", "rot", "hello")...)
	old := enc.Ciphertext

	var rot struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
	}
	mustJSON(t, &rot, run("key", "rotate", "rot")...)
	if rot.Name != "rot" || rot.Version != 2 {
		t.Fatalf("key rotate = %+v, want version 2", rot)
	}

	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(old + "\n\n" + old + "\n"))
	root.SetArgs(run("key", "rewrap", "rot"))
	if err := root.Execute(); err != nil {
		t.Fatalf("key rewrap: %v (%s)", err, errOut.String())
	}
	lines := strings.Fields(out.String())
	if len(lines) != 2 {
		t.Fatalf("key rewrap printed %q, want two ciphertexts", out.String())
	}
	for _, l := range lines {
		ct, err := base64.StdEncoding.DecodeString(l)
		if err != nil || crypto.CiphertextVersion(ct) != 2 {
			t.Fatalf("rewrapped %q: version %d, %v", l, crypto.CiphertextVersion(ct), err)
		}
	}

	mustRun(t, run("key", "min-version", "rot", "2")...)
	wantErr(t, "key version is retired", run("key", "decrypt", "rot", old)...)
	var dec struct {
		Plaintext string `json:"plaintext"`
	}
	mustJSON(t, &dec, run("key", "decrypt", "rot", lines[0])...)
	if dec.Plaintext != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("decrypt of the rewrapped ciphertext = %q", dec.Plaintext)
	}
	wantErr(t, "not a number", run("key", "min-version", "rot", "zero")...)
	wantErr(t, "key version is not retired", run("key", "destroy-version", "rot", "2")...)

	var info keyInfoJSON
	mustJSON(t, &info, run("key", "info", "rot")...)
	if len(info.Versions) != 2 || !info.Versions[0].Retired || info.Versions[1].Retired || info.MinVersion != 2 {
		t.Fatalf("key info = %+v", info)
	}
	human := runCLITerminal(t, run("key", "info", "rot")...)
	if human.err != nil || !strings.Contains(human.stdout, "Versions    2") || !strings.Contains(human.stdout, "retired") {
		t.Fatalf("key info (terminal) = %q, %v", human.stdout, human.err)
	}
}
