package server

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capIPCLock is CAP_IPC_LOCK's bit in the capability sets.
const capIPCLock = 14

func lockMemory() (bool, string) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return false, fmt.Sprintf("getrlimit(RLIMIT_MEMLOCK): %v", err)
	}
	capEff, capErr := effectiveCaps()
	if ok, why := mayLock(capEff, capErr, lim.Cur); !ok {
		return false, why
	}
	// MCL_ONFAULT (Linux 4.4) locks pages as they are touched instead of
	// faulting in every reserved heap arena at once.
	how := "mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT)"
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if errors.Is(err, unix.EINVAL) {
		how = "mlockall(MCL_CURRENT|MCL_FUTURE)"
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		return false, fmt.Sprintf("mlockall: %v", err)
	}
	return true, how
}

// mayLock decides whether mlockall may be tried: with CAP_IPC_LOCK in the
// effective set, or with an unlimited RLIMIT_MEMLOCK.
func mayLock(capEff uint64, capErr error, memlock uint64) (bool, string) {
	if capErr == nil && capEff&(1<<capIPCLock) != 0 {
		return true, ""
	}
	if memlock == unix.RLIM_INFINITY {
		return true, ""
	}
	why := fmt.Sprintf("no CAP_IPC_LOCK and RLIMIT_MEMLOCK is %d bytes", memlock)
	if capErr != nil {
		why = fmt.Sprintf("cannot read capabilities (%v) and RLIMIT_MEMLOCK is %d bytes", capErr, memlock)
	}
	return false, why + " (systemd: AmbientCapabilities=CAP_IPC_LOCK; Kubernetes: capabilities add IPC_LOCK)"
}

// effectiveCaps reads the effective capability set from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCapEff(f)
}

func parseCapEff(f *os.File) (uint64, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
