// Package fsm is Keyraft's replicated state machine: the command codec, the
// deterministic Apply, the state itself (held in memory for reads and
// persisted in a bbolt file), and snapshot/restore.
//
// The package knows nothing of Raft: package cluster feeds it committed log
// entries through Apply and moves snapshots with Snapshot and Restore. Key
// material reaches the FSM only sealed (encrypted with the cluster seal key);
// nothing in this package ever sees plaintext keys.
package fsm
