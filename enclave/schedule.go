package enclave

import (
	"context"
	"time"

	"github.com/keyraft/keyraft/fsm"
)

// Scheduled rotation (config section rotation): the leader rotates every
// key it holds whose name matches a rule once its newest version is older
// than the rule's period. Only keys in the cluster's cache are checked
// (every key used since it was created or loaded); describe and the
// keyraft_key_newest_version_age_seconds metric show the schedule.

// RotationRule rotates keys whose names match Keys (policy syntax) every
// Every.
type RotationRule struct {
	Keys  string
	Every time.Duration
}

// RotationIdentity is the identity the audit log and the key versions name
// for rotations the leader makes on schedule.
const RotationIdentity = "keyraft:rotation-schedule"

// rotationPeriod returns the period of the first rule matching name.
func (s *Service) rotationPeriod(name string) (time.Duration, bool) {
	for _, r := range s.cfg.Rotation {
		if Match(r.Keys, name) {
			return r.Every, true
		}
	}
	return 0, false
}

// newestVersion returns the number and creation time of a record's newest
// version.
func newestVersion(rec fsm.KeyRecord) (int, time.Time) {
	if n := len(rec.Versions); n > 0 {
		return rec.Versions[n-1].Version, rec.Versions[n-1].CreatedAt
	}
	return 1, rec.CreatedAt
}

// scheduleInterval is how often the leader checks the schedule: a tenth
// of the shortest period, between 100 ms and a minute; 0 without rules.
func (s *Service) scheduleInterval() time.Duration {
	var shortest time.Duration
	for _, r := range s.cfg.Rotation {
		if shortest == 0 || r.Every < shortest {
			shortest = r.Every
		}
	}
	if shortest == 0 {
		return 0
	}
	return min(max(shortest/10, 100*time.Millisecond), time.Minute)
}

// rotateDue (leader) rotates the keys whose newest version is older than
// their rule's period. A failure is retried at the next check.
func (s *Service) rotateDue(ctx context.Context) {
	if !s.cfg.Proposer.IsLeader() {
		return
	}
	now := s.now()
	for _, k := range s.ScheduledKeys() {
		if ctx.Err() != nil {
			return
		}
		if now.Sub(k.NewestAt) < k.Every {
			continue
		}
		op := Op{Kind: OpRotateKey, Enclave: k.Enclave, Name: k.Name, Identity: RotationIdentity}
		if _, err := s.execRotateKey(ctx, op); err != nil {
			s.log.Warn("scheduled rotation failed; retrying at the next check", "enclave", k.Enclave, "key", k.Name, "error", err)
			continue
		}
		if s.cfg.Audit != nil {
			s.cfg.Audit(k.Enclave, "/v1/key/rotate/"+k.Name, RotationIdentity)
		}
	}
}

// ScheduledKey is a cached key under a rotation rule.
type ScheduledKey struct {
	Enclave, Name string
	Newest        int       // newest version
	NewestAt      time.Time // when it was created
	Every         time.Duration
}

// ScheduledKeys lists the cached keys under a rotation rule, for the
// schedule and the metric. It reads this node's state only.
func (s *Service) ScheduledKeys() []ScheduledKey {
	if len(s.cfg.Rotation) == 0 {
		return nil
	}
	enclaves := s.enclaveNames()
	var out []ScheduledKey
	for _, enclave := range enclaves {
		for _, rec := range s.cfg.FSM.Keys(enclave, "") {
			every, ok := s.rotationPeriod(rec.Name)
			if !ok {
				continue
			}
			n, at := newestVersion(rec)
			out = append(out, ScheduledKey{Enclave: enclave, Name: rec.Name, Newest: n, NewestAt: at, Every: every})
		}
	}
	return out
}
