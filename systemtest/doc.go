// Package systemtest runs whole Keyraft nodes over real TLS on loopback and
// drives them through the Go client: a three-node cluster in-process, and
// the built binary as separate processes.
package systemtest
