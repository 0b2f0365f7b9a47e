package server

import "github.com/hashicorp/go-hclog"

// LockMemory locks the process's memory into RAM (mlockall), so that
// unsealed keys and plaintexts are never written to swap, and says so in
// log: an info line when memory is locked, a warning with the reason when
// it is not. It never fails: a node without the privilege still serves.
//
// Locking needs CAP_IPC_LOCK (systemd: AmbientCapabilities=CAP_IPC_LOCK;
// Kubernetes: securityContext.capabilities.add: [IPC_LOCK]) or an unlimited
// RLIMIT_MEMLOCK. Without either it is not attempted: with a finite limit,
// locking future mappings would make the Go runtime's allocations fail once
// the limit is reached.
func LockMemory(log hclog.Logger) {
	locked, reason := lockMemory()
	if locked {
		log.Info("memory locked (mlockall): keys are never swapped to disk", "how", reason)
		return
	}
	log.Warn("memory is not locked: keys may be swapped to disk", "reason", reason)
}
