package enclave

import "sync"

// sealRing holds the seal keys a node knows, by fingerprint: the cluster's
// and, during a rotation, the next one. Safe for concurrent use.
type sealRing struct {
	mu   sync.RWMutex
	byID map[string]*sealer
}

func (r *sealRing) get(id string) *sealer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

func (r *sealRing) put(sl *sealer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[string]*sealer{}
	}
	if old, ok := r.byID[sl.id]; ok && old != sl {
		old.zero()
	}
	r.byID[sl.id] = sl
}

// keepOnly drops and zeroes every key whose fingerprint is not in ids and
// returns how many it dropped. Requests still using a dropped sealer are
// safe: its cipher keeps its own key schedule.
func (r *sealRing) keepOnly(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id, sl := range r.byID {
		keep := false
		for _, k := range ids {
			keep = keep || k == id
		}
		if !keep {
			sl.zero()
			delete(r.byID, id)
			n++
		}
	}
	return n
}

// clear zeroes and drops every key.
func (r *sealRing) clear() { r.keepOnly(nil) }
