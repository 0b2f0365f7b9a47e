package systemtest

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the node if the test process dies
// before its cleanups run (a panic, a timeout, go test being killed).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
