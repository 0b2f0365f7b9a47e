package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyraft/keyraft/api/client"
)

func TestKeyLifecycle(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	admin := s.adminArgs()
	run := func(args ...string) []string { return append(args, admin...) }

	mustRun(t, run("key", "create", "my-key", "my-other-key", "zz-key")...)
	wantErr(t, "key already exists", run("key", "create", "my-key")...)

	var info struct {
		Name      string    `json:"name"`
		Algorithm string    `json:"algorithm"`
		CreatedAt time.Time `json:"created_at"`
		CreatedBy string    `json:"created_by"`
	}
	mustJSON(t, &info, run("key", "info", "my-key")...)
	if info.Name != "my-key" || info.Algorithm == "" || info.CreatedAt.IsZero() {
		t.Errorf("key info = %+v", info)
	}
	if info.CreatedBy != s.adminKey.Identity() {
		t.Errorf("created_by = %q, want the admin %q", info.CreatedBy, s.adminKey.Identity())
	}

	var names []string
	mustJSON(t, &names, run("key", "ls")...)
	if want := []string{"my-key", "my-other-key", "zz-key"}; !reflect.DeepEqual(names, want) {
		t.Errorf("key ls = %q, want %q", names, want)
	}
	for _, pattern := range []string{"my", "my*"} {
		names = nil
		mustJSON(t, &names, run("key", "ls", pattern)...)
		if want := []string{"my-key", "my-other-key"}; !reflect.DeepEqual(names, want) {
			t.Errorf("key ls %s = %q, want %q", pattern, names, want)
		}
	}
	names = nil
	mustJSON(t, &names, run("ls", "zz")...)
	if want := []string{"zz-key"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ls zz = %q, want %q", names, want)
	}

	// dek → decrypt recovers the plaintext, bound to the context.
	cryptoCtx := base64.StdEncoding.EncodeToString([]byte(`{"bucket":"b"}`))
	var dek struct{ Plaintext, Ciphertext []byte }
	mustJSON(t, &dek, run("key", "dek", "my-key", cryptoCtx)...)
	if len(dek.Plaintext) != 32 || len(dek.Ciphertext) == 0 {
		t.Fatalf("dek = %d plaintext bytes, %d ciphertext bytes", len(dek.Plaintext), len(dek.Ciphertext))
	}
	ct := base64.StdEncoding.EncodeToString(dek.Ciphertext)
	var dec struct{ Plaintext []byte }
	mustJSON(t, &dec, run("key", "decrypt", "my-key", ct, cryptoCtx)...)
	if !bytes.Equal(dec.Plaintext, dek.Plaintext) {
		t.Error("decrypt(dek ciphertext) differs from the dek plaintext")
	}
	wantErr(t, "decryption failed: ciphertext is not authentic", run("key", "decrypt", "my-key", ct)...)
	wantErr(t, "decryption failed", run("key", "decrypt", "my-other-key", ct, cryptoCtx)...)

	// encrypt → decrypt; the captured JSON of encrypt is accepted as input.
	encOut := mustRun(t, run("key", "encrypt", "my-key", "hello world")...)
	dec.Plaintext = nil
	mustJSON(t, &dec, run("key", "decrypt", "my-key", encOut)...)
	if string(dec.Plaintext) != "hello world" {
		t.Errorf("decrypt(encrypt(hello world)) = %q", dec.Plaintext)
	}
	r := runCLITerminal(t, run("key", "decrypt", "my-key", encOut)...)
	if r.err != nil || r.stdout != "hello world\n" {
		t.Errorf("terminal decrypt = %q, %v; want the text", r.stdout, r.err)
	}

	// import: the same key material decrypts what the other imported copy encrypted.
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(material)
	mustRun(t, run("key", "import", "imported-1", b64)...)
	mustRun(t, run("key", "import", "imported-2", b64, "--cipher", "AES256")...)
	var enc struct{ Ciphertext []byte }
	mustJSON(t, &enc, run("key", "encrypt", "imported-1", "secret")...)
	info.Algorithm = ""
	mustJSON(t, &info, run("key", "info", "imported-2")...)
	if info.Algorithm != "AES256" {
		t.Errorf("imported key algorithm = %q, want AES256", info.Algorithm)
	}
	wantErr(t, "not valid base64", run("key", "import", "bad", "not base64!")...)

	// rm, then info fails with the KES message.
	mustRun(t, run("key", "rm", "my-key", "zz-key")...)
	wantErr(t, "key does not exist", run("key", "info", "my-key")...)
	wantErr(t, "key does not exist", run("key", "rm", "zz-key")...)
	names = nil
	mustJSON(t, &names, run("key", "ls", "*")...)
	if want := []string{"imported-1", "imported-2", "my-other-key"}; !reflect.DeepEqual(names, want) {
		t.Errorf("key ls after rm = %q, want %q", names, want)
	}
}

// TestKeyListPagination lists more keys than one server page holds (1024).
func TestKeyListPagination(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	c, err := client.New([]string{s.addr}, client.WithAPIKey(s.adminKey), client.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	const n = 1100
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				errs <- c.CreateKey(context.Background(), fmt.Sprintf("page-%04d", i))
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	mustJSON(t, &names, append([]string{"key", "ls"}, s.adminArgs()...)...)
	if len(names) != n || names[0] != "page-0000" || names[n-1] != fmt.Sprintf("page-%04d", n-1) {
		t.Fatalf("key ls returned %d names (first %q), want %d", len(names), names[:min(3, len(names))], n)
	}
}

func TestKeyHumanOutput(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	args := func(a ...string) []string { return append(a, s.adminArgs()...) }
	mustRun(t, args("key", "create", "k1")...)

	r := runCLITerminal(t, args("key", "info", "k1")...)
	if r.err != nil || !strings.Contains(r.stdout, "Name        k1\n") || !strings.Contains(r.stdout, s.adminKey.Identity()) {
		t.Errorf("terminal key info = %q, %v", r.stdout, r.err)
	}
	r = runCLITerminal(t, args("key", "ls")...)
	if r.err != nil || r.stdout != "k1\n" {
		t.Errorf("terminal key ls = %q, %v", r.stdout, r.err)
	}
	r = runCLITerminal(t, args("key", "dek", "k1")...)
	if r.err != nil || !strings.HasPrefix(r.stdout, "Plaintext   ") || !strings.Contains(r.stdout, "\nCiphertext  ") {
		t.Errorf("terminal key dek = %q, %v", r.stdout, r.err)
	}
	// --json forces JSON on a terminal too.
	r = runCLITerminal(t, args("key", "ls", "--json")...)
	if r.err != nil || strings.Join(strings.Fields(r.stdout), "") != `["k1"]` {
		t.Errorf("terminal key ls --json = %q, %v", r.stdout, r.err)
	}
}

// TestExitStatus runs the real main in a child process: a failing command
// exits non-zero and prints the KES error message to stderr.
func TestExitStatus(t *testing.T) {
	if os.Getenv("KEYRAFT_CLI_HELPER") == "1" {
		args := os.Args
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Args = append([]string{"keyraft"}, args...)
		main()
		os.Exit(0)
	}
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	child := func(args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestExitStatus$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), "KEYRAFT_CLI_HELPER=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errOut.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run child: %v", err)
		}
		return out.String(), errOut.String(), 0
	}
	args := func(a ...string) []string { return append(a, s.adminArgs()...) }

	if _, stderr, code := child(args("key", "create", "k")...); code != 0 {
		t.Fatalf("key create: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := child(args("key", "rm", "k")...); code != 0 {
		t.Fatalf("key rm: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code := child(args("key", "info", "k")...)
	if code == 0 {
		t.Fatal("key info of a deleted key exited 0")
	}
	if !strings.Contains(stderr, "key does not exist") {
		t.Errorf("stderr = %q, want the KES message", stderr)
	}
}
