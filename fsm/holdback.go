package fsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A node that recovered from a lost quorum (peers.json) may hold key
// records the lost majority had deleted or replaced: its log can miss
// their last entries. Until the leader has reconciled those records with
// the keystore, the node holds back every key record at or below the last
// Raft index it had at the recovery. The hold-back is local to the node
// (each survivor records its own) and survives restarts in a file next to
// the state file; it ends when a replicated MarkRestore covers it, whose
// reconciliation (ReconcileKeys) then confirms or evicts the records on
// every node.

// holdbackFile is the hold-back's file, in the state file's directory.
const holdbackFile = "holdback"

// MarkRestore sets the restore marker (see RestoreMarker) over every key
// record at or below Marker.Applied, so that no node serves them until the
// leader has reconciled them with the keystore. A pending marker is
// replaced (its reconciliation finds the ID changed and runs again).
type MarkRestore struct {
	Marker RestoreMarker `json:"marker"`
}

// Type returns TypeMarkRestore.
func (MarkRestore) Type() Type { return TypeMarkRestore }

func (s *state) planMarkRestore(c MarkRestore, ch *change) error {
	m := c.Marker
	ch.put(bucketMeta, string(metaRestore), m)
	ch.do(func() { s.restore = &m })
	return nil
}

// HoldBack makes this node hold back every key record at or below index
// (see above) and records it durably, so a restart keeps it. A larger
// hold-back already in force is kept. It returns an error if the file
// cannot be written; the node must then not start serving.
func (f *FSM) HoldBack(index uint64) error {
	if index <= f.holdback.Load() {
		return nil
	}
	path := filepath.Join(filepath.Dir(f.path), holdbackFile)
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, strings.NewReader(strconv.FormatUint(index, 10)+"\n")); err != nil {
		return fmt.Errorf("fsm: hold back: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("fsm: hold back: %w", err)
	}
	f.holdback.Store(index)
	f.log.Warn("holding back key records until they are reconciled with the keystore", "through_index", index)
	return nil
}

// HeldBack returns the index at or below which this node holds back key
// records, 0 if it holds back none. Safe for concurrent use.
func (f *FSM) HeldBack() uint64 { return f.holdback.Load() }

// loadHoldBack reads the hold-back file, if any.
func (f *FSM) loadHoldBack() error {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(f.path), holdbackFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsm: read hold-back: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("fsm: hold-back file: %w", err)
	}
	f.holdback.Store(v)
	return nil
}

// releaseHoldBack ends the hold-back once a replicated restore marker
// covers it: from then on the marker holds the records back.
func (f *FSM) releaseHoldBack(m *RestoreMarker) {
	h := f.holdback.Load()
	if h == 0 || m == nil || m.Applied < h {
		return
	}
	if err := os.Remove(filepath.Join(filepath.Dir(f.path), holdbackFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.log.Error("could not remove the hold-back file; the hold-back ends anyway", "error", err)
	}
	f.holdback.Store(0)
	f.log.Info("the replicated restore marker now holds back the recovered key records", "through_index", m.Applied)
}
