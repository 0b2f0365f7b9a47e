//go:build linux

package awstest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the emulator if the test binary
// dies without stopping it (a crash, a -timeout panic, SIGKILL).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
