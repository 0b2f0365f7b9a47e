package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLimitsSection(t *testing.T) {
	base := "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\nkeystore:\n  fs:\n    path: /tmp/k\n"
	c, err := Parse([]byte(base + "limits:\n  max_connections: 512\n  max_requests_per_identity: 64\n  memory: 512MiB\n  connection_rate: 200\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Limits{MaxConnections: 512, MaxRequestsPerIdentity: 64, MemoryLimit: 512 << 20, ConnectionRate: 200}); c.Limits != want {
		t.Fatalf("limits = %+v, want %+v", c.Limits, want)
	}
	c, err = Parse([]byte(base))
	if err != nil || c.Limits != (Limits{}) {
		t.Fatalf("no section: %+v, %v", c, err)
	}
	c, err = Parse([]byte(base + "limits:\n  memory: \"off\"\n"))
	if err != nil || c.Limits.MemoryLimit != -1 {
		t.Fatalf("memory off: %+v, %v", c, err)
	}
	c, err = Parse([]byte(base + "limits:\n  connection_rate: off\n"))
	if err != nil || c.Limits.ConnectionRate != -1 {
		t.Fatalf("connection_rate off: %+v, %v", c, err)
	}
	for _, bad := range []string{"  max_connections: -1\n", "  max_requests_per_identity: many\n", "  memory: 12XB\n", "  memory: 99999999999TiB\n", "  connection_rate: 0\n", "  connection_rate: fast\n"} {
		_, err := Parse([]byte(base + "limits:\n" + bad))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Line == 0 {
			t.Errorf("%q: err = %v, want a FieldError with a line", bad, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1B": 1, "2KB": 2000, "2KiB": 2048, "3 MB": 3e6, "1GiB": 1 << 30, "1TB": 1e12, "off": -1, "OFF": -1} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GB", "GB", "1 PB", "9223372036854775807KB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestProtectionSection(t *testing.T) {
	c := mustParse(t, minimal+"protection:\n  deletion: [\"minio-*\", \"audit-[0-9]\"]\n")
	if len(c.ProtectDeletion) != 2 || c.ProtectDeletion[0] != "minio-*" || c.ProtectDeletion[1] != "audit-[0-9]" {
		t.Fatalf("ProtectDeletion = %q", c.ProtectDeletion)
	}
	if c := mustParse(t, minimal); c.ProtectDeletion != nil {
		t.Fatalf("ProtectDeletion without the section = %q", c.ProtectDeletion)
	}
	_, err := Parse([]byte(minimal + "protection:\n  deletion: [\"bad[\"]\n"))
	wantErr(t, err, `config: protection.deletion[0]: invalid key name pattern "bad["`)
}

func TestRecoveryWindow(t *testing.T) {
	if c := mustParse(t, minimal); c.RecoveryWindow != 0 {
		t.Fatalf("default recovery window = %v, want 0 (KES behaviour)", c.RecoveryWindow)
	}
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "90s": 90 * time.Second, "720h": 720 * time.Hour, "0": 0} {
		if c := mustParse(t, minimal+"protection:\n  recovery_window: "+in+"\n"); c.RecoveryWindow != want {
			t.Fatalf("recovery_window %s = %v, want %v", in, c.RecoveryWindow, want)
		}
	}
	_, err := Parse([]byte(minimal + "protection:\n  recovery_window: 31d\n"))
	if err == nil || !strings.Contains(err.Error(), "protection.recovery_window") || !strings.Contains(err.Error(), "between 0 and 30 days") {
		t.Fatalf("31d: %v", err)
	}
	_, err = Parse([]byte(minimal + "protection:\n  recovery_window: soon\n"))
	if err == nil || !strings.Contains(err.Error(), `invalid duration "soon"`) {
		t.Fatalf("soon: %v", err)
	}
}

func TestRotationSection(t *testing.T) {
	c := mustParse(t, minimal+"rotation:\n  - keys: \"minio-*\"\n    every: 90d\n  - keys: audit\n    every: 12h\n")
	want := []RotationRule{{Keys: "minio-*", Every: 90 * 24 * time.Hour}, {Keys: "audit", Every: 12 * time.Hour}}
	if len(c.Rotation) != 2 || c.Rotation[0] != want[0] || c.Rotation[1] != want[1] {
		t.Fatalf("Rotation = %+v, want %+v", c.Rotation, want)
	}
	_, err := Parse([]byte(minimal + "rotation:\n  - keys: x\n"))
	if err == nil || !strings.Contains(err.Error(), "rotation[0].every") {
		t.Fatalf("rule without a period: %v", err)
	}
	_, err = Parse([]byte(minimal + "rotation:\n  - keys: \"bad[\"\n    every: 1d\n"))
	if err == nil || !strings.Contains(err.Error(), `rotation[0].keys: invalid key name pattern "bad["`) {
		t.Fatalf("bad pattern: %v", err)
	}
}
