package main

import (
	"strings"
	"testing"

	"github.com/keyraft/keyraft/internal/identity"
)

func TestEnclaveAndPolicyWriteCommands(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)
	admin := s.adminArgs()
	tenant, err := identity.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := identity.GenerateAPIKey(nil)

	wantErr(t, "--admin is required", append([]string{"enclave", "create", "t1"}, admin...)...)
	mustRun(t, append([]string{"enclave", "create", "t1", "--admin", tenant.Identity()}, admin...)...)
	if out := mustRun(t, append([]string{"enclave", "info", "t1", "--json"}, admin...)...); !strings.Contains(out, tenant.Identity()) {
		t.Fatalf("enclave info: %s", out)
	}
	if out := mustRun(t, append([]string{"enclave", "ls", "--json"}, admin...)...); !strings.Contains(out, "t1") || !strings.Contains(out, "default") {
		t.Fatalf("enclave ls: %s", out)
	}

	tenantArgs := []string{"-k", "--server", s.addr, "-a", tenant.String(), "-e", "t1"}
	mustRun(t, append([]string{"key", "create", "tk"}, tenantArgs...)...)
	mustRun(t, append([]string{"policy", "create", "app", "--allow", "/v1/key/generate/*,/v1/key/decrypt/*"}, tenantArgs...)...)
	mustRun(t, append([]string{"policy", "assign", "app", user.Identity()}, tenantArgs...)...)
	userArgs := []string{"-k", "--server", s.addr, "-a", user.String(), "-e", "t1"}
	mustRun(t, append([]string{"key", "dek", "tk"}, userArgs...)...)
	wantErr(t, "not authorized", append([]string{"key", "rm", "tk"}, userArgs...)...)
	mustRun(t, append([]string{"identity", "rm", user.Identity()}, tenantArgs...)...)
	wantErr(t, "not authorized", append([]string{"key", "dek", "tk"}, userArgs...)...)
	mustRun(t, append([]string{"policy", "rm", "app"}, tenantArgs...)...)
	wantErr(t, "policy does not exist", append([]string{"policy", "rm", "app"}, tenantArgs...)...)

	mustRun(t, append([]string{"enclave", "rm", "t1"}, admin...)...)
	wantErr(t, "enclave does not exist", append([]string{"enclave", "info", "t1"}, admin...)...)
}
