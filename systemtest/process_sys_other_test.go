//go:build !linux

package systemtest

import "os/exec"

// setPdeathsig does nothing where the kernel has no parent-death signal;
// the test's cleanups kill the nodes.
func setPdeathsig(*exec.Cmd) {}
