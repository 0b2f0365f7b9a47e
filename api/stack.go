package api

// HTTP/2 runs every request in a new goroutine, whose stack starts small
// and is copied to a larger one when the request's calls go deep (JSON,
// the key lookup, TLS writes). A copy costs in proportion to the frames on
// the stack at that moment: about a tenth of the server's CPU when it
// happened deep in a request. prewarmStack makes the one growth happen at
// the top of ServeHTTP, where the stack holds a handful of frames.

// prewarmBytes is the stack a request needs, measured under keyraft bench.
const prewarmBytes = 12 << 10

// prewarmStack needs a frame of prewarmBytes; it is never inlined, and
// the variable index keeps the array (and so the frame) in place.
//
//go:noinline
func prewarmStack(i int) byte {
	var buf [prewarmBytes]byte
	return buf[i&(prewarmBytes-1)]
}
