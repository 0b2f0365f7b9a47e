//go:build !unix

package fs

import iofs "io/fs"

// inode returns 0: this platform's file info carries no inode number, so
// versions rely on the modification time and size alone.
func inode(iofs.FileInfo) uint64 { return 0 }
