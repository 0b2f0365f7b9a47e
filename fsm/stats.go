package fsm

import "sync/atomic"

// typeNames names every command type for metrics (the label value of
// keyraft_raft_applies_total).
var typeNames = map[Type]string{
	TypePutKey:          "put_key",
	TypeRemoveKeys:      "remove_keys",
	TypePutEnclave:      "put_enclave",
	TypeDeleteEnclave:   "delete_enclave",
	TypePutPolicy:       "put_policy",
	TypeDeletePolicy:    "delete_policy",
	TypeAssignIdentity:  "assign_identity",
	TypeDeleteIdentity:  "delete_identity",
	TypeSetSeal:         "set_seal",
	TypePutMember:       "put_member",
	TypeRemoveMember:    "remove_member",
	TypeReplacePolicies: "replace_policies",
	TypeBarrier:         "barrier",
	TypeReconcileKeys:   "reconcile_keys",
	TypeMarkRestore:     "mark_restore",
	TypeSetProtection:   "set_protection",
}

// String returns the type's metric name ("unknown" for an unknown type).
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "unknown"
}

// Types returns every known command type.
func Types() []Type {
	out := make([]Type, 0, len(typeNames))
	for t := range typeNames {
		out = append(out, t)
	}
	return out
}

// applyCounts counts, per command type, the commands this node applied
// since it opened its state (replays of already applied indexes excluded).
type applyCounts [256]atomic.Uint64

// Applied returns how many commands of type t this node has applied since
// it started. Safe for concurrent use.
func (f *FSM) Applied(t Type) uint64 { return f.applies[t].Load() }

// KeyCount returns how many sealed key records the state holds, all
// enclaves together. It copies nothing, so it is cheap with many keys.
func (f *FSM) KeyCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.keyCount()
}
