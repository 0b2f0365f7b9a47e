// Package boltcheck verifies the page structure of a bbolt database file
// before bbolt reads it.
//
// bbolt trusts its files: a page reference beyond the end of the file
// faults (SIGBUS) when it is read through the memory map, and a page
// reference that points back up the tree makes cursors (Bucket.ForEach)
// and even Tx.Check loop or recurse forever. Files that come from outside
// (snapshot images, restored backups) or that may be damaged (a data
// directory after a disk failure) must therefore be walked by a reader that
// checks every offset and visits every page at most once. Verify is that
// reader; after it succeeds bbolt can open and iterate the file without
// faulting or looping.
package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrCorrupt is wrapped by every error Verify returns for a damaged file.
var ErrCorrupt = errors.New("boltcheck: corrupt bbolt file")

// bbolt's on-disk format (go.etcd.io/bbolt/internal/common), little endian
// on the platforms Keyraft runs on.
const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketSize     = 16 // root pgid u64, sequence u64

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	bucketLeaf   = 0x01
	magic        = 0xED0CDAED
	version      = 2
	metaSize     = 64 // magic, version, pageSize, flags, root bucket, freelist, pgid, txid, checksum
	minPageSize  = 512
	maxPageSize  = 1 << 20
	maxNesting   = 64 // nested buckets
	maxPageCount = 1 << 40
)

var le = binary.LittleEndian

// Verify checks the bbolt file contents b: a valid meta page (the newer of
// the two, as bbolt picks), a freelist page inside the file, and a tree of
// branch and leaf pages below the root bucket in which every page lies
// below the high-water mark and within b, is referenced once, and has
// elements, keys and values inside its own bytes; nested and inline
// buckets likewise. It returns nil or an error wrapping ErrCorrupt that
// names the first problem. Verify never panics, and its time and memory
// are linear in len(b). It does not check the freelist's contents or key
// order, which cannot make bbolt fault or loop when reading.
func Verify(b []byte) error {
	return VerifyReader(bytes.NewReader(b), int64(len(b)))
}

// VerifyFile is Verify for the file at path, read page by page (memory in
// the order of the largest page, not the file). I/O errors are returned as
// they are, not wrapped in ErrCorrupt.
func VerifyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return VerifyReader(f, fi.Size())
}

// VerifyReader is Verify for size bytes read from r. Read errors other
// than a short read (which means corruption) are returned as they are.
func VerifyReader(r io.ReaderAt, size int64) error {
	if size < 2*minPageSize {
		return corrupt("file of %d bytes is too small", size)
	}
	head := make([]byte, min(size, 2*maxPageSize))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	m, err := pickMeta(head)
	if err != nil {
		return err
	}
	v := &walker{r: r, size: uint64(size), pageSize: uint64(m.pageSize), hwm: m.hwm, seen: map[uint64]bool{0: true, 1: true}}
	if v.hwm*v.pageSize > v.size {
		return corrupt("truncated: pages up to byte %d, file has %d bytes", v.hwm*v.pageSize, size)
	}
	if m.freelist != noFreelist {
		if _, err := v.pageAt(m.freelist); err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
	}
	return v.bucket(m.root, nil, 0)
}

// noFreelist is the meta page's freelist id when the freelist is not
// stored (NoFreelistSync).
const noFreelist = ^uint64(0)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

// pickMeta returns the valid meta page with the higher transaction id.
func pickMeta(b []byte) (meta, error) {
	m0, err0 := readMeta(b, 0)
	var m1 meta
	err1 := errors.New("no second meta page")
	if err0 == nil {
		m1, err1 = readMeta(b, uint64(m0.pageSize))
	} else if len(b) >= 4096+pageHeaderSize+metaSize {
		m1, err1 = readMeta(b, 4096) // the first meta page is damaged: guess the usual size
	}
	switch {
	case err0 == nil && err1 == nil:
		if m1.txid > m0.txid {
			return m1, nil
		}
		return m0, nil
	case err0 == nil:
		return m0, nil
	case err1 == nil:
		return m1, nil
	}
	return meta{}, fmt.Errorf("%w: meta pages: %w; %w", ErrCorrupt, err0, err1)
}

func readMeta(b []byte, off uint64) (meta, error) {
	if off+pageHeaderSize+metaSize > uint64(len(b)) {
		return meta{}, errors.New("meta page beyond the end of the file")
	}
	p := b[off : off+pageHeaderSize+metaSize]
	if le.Uint16(p[8:])&metaPage == 0 {
		return meta{}, errors.New("not a meta page")
	}
	d := p[pageHeaderSize:]
	if le.Uint32(d[0:]) != magic || le.Uint32(d[4:]) != version {
		return meta{}, errors.New("bad magic or version")
	}
	h := fnv.New64a()
	_, _ = h.Write(d[:metaSize-8])
	if h.Sum64() != le.Uint64(d[metaSize-8:]) {
		return meta{}, errors.New("meta checksum mismatch")
	}
	m := meta{pageSize: le.Uint32(d[8:]), root: le.Uint64(d[16:]), freelist: le.Uint64(d[32:]), hwm: le.Uint64(d[40:]), txid: le.Uint64(d[48:])}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", m.pageSize)
	}
	if m.hwm < 2 || m.hwm > maxPageCount {
		return meta{}, fmt.Errorf("high-water mark %d", m.hwm)
	}
	return m, nil
}

type walker struct {
	r        io.ReaderAt
	size     uint64
	pageSize uint64
	hwm      uint64
	seen     map[uint64]bool
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// bucket checks the tree of a bucket: root > 0 is a page id; root 0 means
// an inline bucket whose leaf page is inline.
func (v *walker) bucket(root uint64, inline []byte, depth int) error {
	if depth > maxNesting {
		return corrupt("buckets nested more than %d deep", maxNesting)
	}
	if root == 0 {
		return v.page(inline, 0, true, depth)
	}
	// Iterative depth-first walk over the bucket's branch pages; nested
	// buckets recurse, bounded by maxNesting.
	stack := []uint64{root}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, err := v.pageAt(id)
		if err != nil {
			return err
		}
		children, err := v.pageChildren(p, id, depth)
		if err != nil {
			return err
		}
		stack = append(stack, children...)
	}
	return nil
}

// pageAt reads page id (with its overflow pages), marking it and its
// overflow pages seen.
func (v *walker) pageAt(id uint64) ([]byte, error) {
	if id < 2 || id >= v.hwm {
		return nil, corrupt("page %d outside [2, %d)", id, v.hwm)
	}
	off := id * v.pageSize
	var hdr [pageHeaderSize]byte
	if err := v.read(hdr[:], off, id); err != nil {
		return nil, err
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= v.hwm {
		return nil, corrupt("page %d: %d overflow pages beyond the high-water mark", id, overflow)
	}
	if got := le.Uint64(hdr[:]); got != id {
		return nil, corrupt("page %d carries id %d", id, got)
	}
	for i := id; i <= id+overflow; i++ {
		if v.seen[i] {
			return nil, corrupt("page %d referenced twice", i)
		}
		v.seen[i] = true
	}
	p := make([]byte, (overflow+1)*v.pageSize) // ≤ the file: overflow pages are below hwm
	if err := v.read(p, off, id); err != nil {
		return nil, err
	}
	return p, nil
}

// read fills p from offset off of page id's bytes.
func (v *walker) read(p []byte, off, id uint64) error {
	if off+uint64(len(p)) > v.size {
		return corrupt("page %d beyond the end of the file", id)
	}
	if _, err := v.r.ReadAt(p, int64(off)); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("page %d beyond the end of the file", id)
		}
		return err
	}
	return nil
}

// pageChildren checks the page p (id, or an inline page when id is 0) and
// returns the ids of the branch children to visit; nested buckets found in
// a leaf are checked at once.
func (v *walker) pageChildren(p []byte, id uint64, depth int) ([]uint64, error) {
	if len(p) < pageHeaderSize {
		return nil, corrupt("page %d: %d bytes", id, len(p))
	}
	flags, count := le.Uint16(p[8:]), uint64(le.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > uint64(len(p)) {
		return nil, corrupt("page %d: %d elements do not fit", id, count)
	}
	var children []uint64
	for i := uint64(0); i < count; i++ {
		e := pageHeaderSize + i*elementSize
		el := p[e : e+elementSize]
		switch {
		case flags&branchPage != 0 && id != 0:
			pos, ksize := uint64(le.Uint32(el[0:])), uint64(le.Uint32(el[4:]))
			if e+pos+ksize > uint64(len(p)) {
				return nil, corrupt("page %d: element %d's key outside the page", id, i)
			}
			children = append(children, le.Uint64(el[8:]))
		case flags&leafPage != 0:
			eflags := le.Uint32(el[0:])
			pos, ksize, vsize := uint64(le.Uint32(el[4:])), uint64(le.Uint32(el[8:])), uint64(le.Uint32(el[12:]))
			start := e + pos + ksize
			if start+vsize > uint64(len(p)) {
				return nil, corrupt("page %d: element %d's key or value outside the page", id, i)
			}
			if eflags&bucketLeaf == 0 {
				continue
			}
			val := p[start : start+vsize]
			if len(val) < bucketSize {
				return nil, corrupt("page %d: element %d: bucket header of %d bytes", id, i, len(val))
			}
			if err := v.bucket(le.Uint64(val), val[bucketSize:], depth+1); err != nil {
				return nil, err
			}
		default:
			return nil, corrupt("page %d: type %#x is neither branch nor leaf", id, flags)
		}
	}
	return children, nil
}

// page checks an inline bucket's page: a leaf, possibly with nested
// buckets.
func (v *walker) page(p []byte, id uint64, inline bool, depth int) error {
	if inline && len(p) >= pageHeaderSize && le.Uint16(p[8:])&leafPage == 0 {
		return corrupt("inline bucket page is not a leaf")
	}
	_, err := v.pageChildren(p, id, depth)
	return err
}
