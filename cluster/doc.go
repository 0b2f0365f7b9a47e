// Package cluster runs Keyraft's Raft group: the mutual-TLS stream layer on
// the cluster port, the raft-boltdb log, file snapshots, bootstrap,
// membership changes, leader tracking and Apply.
//
// The cluster port carries two kinds of connection, told apart by one byte
// the dialer writes after the TLS handshake: Raft traffic and the cluster
// RPC channel (HTTP over the same mutual TLS) that followers use to forward
// writes to the leader, join the group and fetch the seal key. Every peer
// is authenticated by its certificate; the Authorize hook decides which
// certificate identities are members.
//
// The package never imports api or enclave; it moves fsm commands.
package cluster
