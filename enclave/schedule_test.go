package enclave

import (
	"context"
	"testing"
	"time"
)

// TestScheduledRotation: the leader rotates keys under a rule once their
// newest version is older than its period, and only those.
func TestScheduledRotation(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	clock := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s.now = clock.now
	s.cfg.Rotation = []RotationRule{{Keys: "minio-*", Every: time.Hour}}
	var audited []string
	s.cfg.Audit = func(enclave, path, identity string) { audited = append(audited, path+" "+identity) }
	for _, n := range []string{"minio-a", "other"} {
		if err := s.CreateKey(ctx, DefaultEnclave, n, admin); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.ScheduledKeys(); len(got) != 1 || got[0].Name != "minio-a" || got[0].Newest != 1 {
		t.Fatalf("scheduled keys = %+v", got)
	}
	clock.add(time.Hour - time.Second)
	s.rotateDue(ctx)
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "minio-a"); len(info.Versions) != 1 {
		t.Fatalf("rotated before its period: %d versions", len(info.Versions))
	}
	clock.add(time.Second)
	s.rotateDue(ctx)
	info, err := s.DescribeKey(ctx, DefaultEnclave, "minio-a")
	if err != nil || len(info.Versions) != 2 || info.Versions[1].CreatedBy != RotationIdentity {
		t.Fatalf("after its period: %+v, %v", info, err)
	}
	if info.RotateEvery != time.Hour || !info.NextRotation.Equal(clock.now().Add(time.Hour)) {
		t.Fatalf("schedule in describe: every %v, next %v", info.RotateEvery, info.NextRotation)
	}
	if other, _ := s.DescribeKey(ctx, DefaultEnclave, "other"); len(other.Versions) != 1 || other.RotateEvery != 0 {
		t.Fatalf("a key under no rule: %+v", other)
	}
	if len(audited) != 1 || audited[0] != "/v1/key/rotate/minio-a "+RotationIdentity {
		t.Fatalf("audited %q", audited)
	}
	s.rotateDue(ctx)
	if info, _ := s.DescribeKey(ctx, DefaultEnclave, "minio-a"); len(info.Versions) != 2 {
		t.Fatal("rotated twice in one period")
	}
}
