// Package enclave is Keyraft's domain logic: enclaves, policies, identities,
// keys and the cryptographic operations on them, over the replicated state
// (package fsm) and the durable keystore (package store).
//
// The Service answers reads and crypto requests from the local replicated
// state and an in-memory cache of unsealed keys, so the hot path
// (generate/encrypt/decrypt/hmac of a cached key) touches neither the network,
// the keystore nor the disk. Writes perform their side effects on the
// keystore and then go through Raft via a Proposer.
//
// Client-visible failures are returned as kes.Error values carrying KES's
// exact status and message; any other error is an internal failure.
package enclave
