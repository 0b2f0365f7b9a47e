//go:build !linux

package awstest

import "os/exec"

// setParentDeathSignal is a no-op outside Linux: Stop (via t.Cleanup or Main)
// is then the only way the emulator ends.
func setParentDeathSignal(*exec.Cmd) {}
