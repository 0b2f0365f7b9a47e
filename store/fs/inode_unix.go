//go:build unix

package fs

import (
	iofs "io/fs"
	"syscall"
)

// inode returns the inode number of the file fi describes, or 0 if fi does
// not carry one.
func inode(fi iofs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino) // Ino is not uint64 on every platform
	}
	return 0
}
