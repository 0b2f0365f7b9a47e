//go:build !linux

package server

import "runtime"

func lockMemory() (bool, string) {
	return false, "locking memory is not supported on " + runtime.GOOS
}
