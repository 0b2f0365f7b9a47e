package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterCommands(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	admin := s.adminArgs()

	var st struct {
		Leader  string
		Members []struct {
			ID           string `json:"id"`
			State        string `json:"state"`
			AppliedIndex uint64 `json:"applied_index"`
		}
	}
	mustJSON(t, &st, append([]string{"cluster", "status", "--json"}, admin...)...)
	if st.Leader != "dev" || len(st.Members) != 1 || st.Members[0].State != "Leader" || st.Members[0].AppliedIndex == 0 {
		t.Fatalf("status = %+v", st)
	}

	mustRun(t, append([]string{"key", "create", "before-backup"}, admin...)...)
	backup := filepath.Join(t.TempDir(), "backup.snap")
	mustRun(t, append([]string{"cluster", "snapshot", "save", backup}, admin...)...)
	if fi, err := os.Stat(backup); err != nil || fi.Size() == 0 {
		t.Fatalf("backup file: %v", err)
	}
	mustRun(t, append([]string{"cluster", "snapshot", "restore", backup}, admin...)...)
	out := mustRun(t, append([]string{"key", "info", "before-backup", "--json"}, admin...)...)
	if !strings.Contains(out, "before-backup") {
		t.Fatalf("key info after restore: %s", out)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a snapshot"), 0o600)
	wantErr(t, "not a valid keyraft snapshot", append([]string{"cluster", "snapshot", "restore", garbage}, admin...)...)

	wantErr(t, "give exactly one of --identity and --node-cert", append([]string{"cluster", "add", "n2", "127.0.0.1:1"}, admin...)...)
	mustRun(t, append([]string{"cluster", "remove", "ghost"}, admin...)...)
	wantErr(t, "cannot be reused", append([]string{"cluster", "add", "ghost", "127.0.0.1:1", "--identity", strings.Repeat("ab", 32)}, admin...)...)
}

func TestBenchCommand(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	out := mustRun(t, append([]string{"bench", "--duration", "500ms", "--concurrency", "4", "--json"}, s.adminArgs()...)...)
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Requests == 0 || res.Errors != 0 || res.PerSecond <= 0 || res.P99ms < res.P50ms {
		t.Fatalf("bench result = %+v", res)
	}
	wantErr(t, "--op must be", append([]string{"bench", "--op", "nope"}, s.adminArgs()...)...)
}
