package aws

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/storetest"
)

// TestRealAWS runs the conformance suite against real AWS Secrets Manager,
// using the SDK default credential chain. It runs only when
// KEYRAFT_AWS_TEST_REGION is set and credentials resolve; optional
// KEYRAFT_AWS_TEST_ENDPOINT and KEYRAFT_AWS_TEST_KMS_KEY are passed through.
// It works under a fresh "keyraft-test/<random>/" prefix and deletes what it
// creates (force-delete, no recovery window).
func TestRealAWS(t *testing.T) {
	region := os.Getenv("KEYRAFT_AWS_TEST_REGION")
	if region == "" {
		t.Skip("real AWS test: set KEYRAFT_AWS_TEST_REGION and provide AWS credentials to run it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		t.Skipf("real AWS test: cannot load the AWS configuration: %v", err)
	}
	if creds, err := awsCfg.Credentials.Retrieve(ctx); err != nil || !creds.HasKeys() {
		t.Skipf("real AWS test: no AWS credentials in the environment: %v", err)
	}

	cfg := Config{
		Endpoint: os.Getenv("KEYRAFT_AWS_TEST_ENDPOINT"),
		Region:   region,
		KMSKey:   os.Getenv("KEYRAFT_AWS_TEST_KMS_KEY"),
		Prefix:   "keyraft-test/" + uniquePrefix(t),
	}
	open := func(t *testing.T) *Store {
		s, err := Open(context.Background(), cfg, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
	t.Cleanup(func() { deleteAll(t, open(t)) })

	s := open(t)
	defer s.Close()
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status: %v", err)
	}
	storetest.RunWith(t, func(t *testing.T) store.Store { return open(t) },
		storetest.Options{MaxValueSize: maxValueLen})
	t.Run("Recoverable", func(t *testing.T) { realAWSRecoverable(t, s) })
}

// realAWSRecoverable checks ScheduleDelete, RestoreDeleted and Purge against
// real AWS, whose RestoreSecret the emulator tests can only emulate. It
// purges what it scheduled: deleteAll does not see scheduled secrets.
func realAWSRecoverable(t *testing.T, s *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = s.Purge(context.Background(), "recoverable") })
	value := []byte("cmVjb3ZlcmFibGU=")
	if err := s.Create(ctx, "recoverable", value); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleDelete(ctx, "recoverable", time.Minute); err != nil {
		t.Fatalf("ScheduleDelete: %v", err)
	}
	if _, err := s.Get(ctx, "recoverable"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a scheduled secret = %v, want ErrNotFound", err)
	}
	if err := s.ScheduleDelete(ctx, "recoverable", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ScheduleDelete = %v, want ErrNotFound", err)
	}
	if err := s.RestoreDeleted(ctx, "recoverable"); err != nil {
		t.Fatalf("RestoreDeleted: %v", err)
	}
	if got, err := s.Get(ctx, "recoverable"); err != nil || !bytes.Equal(got, value) {
		t.Errorf("Get after RestoreDeleted = %q, %v", got, err)
	}
	if err := s.RestoreDeleted(ctx, "recoverable"); err != nil {
		t.Errorf("RestoreDeleted of a live secret = %v, want success", err)
	}
	if err := s.ScheduleDelete(ctx, "recoverable", time.Minute); err != nil {
		t.Fatalf("ScheduleDelete: %v", err)
	}
	if err := s.Purge(ctx, "recoverable"); err != nil {
		t.Fatalf("Purge of a scheduled secret: %v", err)
	}
	if err := s.RestoreDeleted(ctx, "never-created"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RestoreDeleted(never-created) = %v, want ErrNotFound", err)
	}
	if err := s.Purge(ctx, "never-created"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Purge(never-created) = %v, want ErrNotFound", err)
	}
}

// deleteAll removes every secret under s's prefix and closes s.
func deleteAll(t *testing.T, s *Store) {
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, err := s.List(ctx, "")
	if err != nil {
		t.Errorf("cleanup: List: %v", err)
		return
	}
	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cleanup: Delete(%q): %v", n, err)
		}
	}
}
