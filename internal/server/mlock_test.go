//go:build linux

package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMayLock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caps    uint64
		capErr  error
		memlock uint64
		want    bool
	}{
		{"CAP_IPC_LOCK", 1 << capIPCLock, nil, 64 << 10, true},
		{"unlimited memlock", 0, nil, unix.RLIM_INFINITY, true},
		{"neither", 1<<capIPCLock - 1, nil, 8 << 20, false},
		{"caps unreadable", 0, errors.New("no /proc"), 8 << 20, false},
	} {
		ok, why := mayLock(tc.caps, tc.capErr, tc.memlock)
		if ok != tc.want || (!ok && !strings.Contains(why, "CAP_IPC_LOCK")) {
			t.Errorf("%s: mayLock = %v %q", tc.name, ok, why)
		}
	}
}

func TestParseCapEff(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(p, []byte("Name:\tkeyraft\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	caps, err := parseCapEff(f)
	if err != nil || caps != 0x000001ffffffffff || caps&(1<<capIPCLock) == 0 {
		t.Fatalf("parseCapEff = %x, %v", caps, err)
	}
}
