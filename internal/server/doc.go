// Package server wires one Keyraft node together from its configuration:
// the keystore, the replicated state, the Raft node, the enclave service and
// the KES API over TLS. cmd/keyraft uses it to run the server, and the
// system tests use it to run real nodes in-process.
package server
