package aws

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/store"
)

// Store uses Secrets Manager's own recovery window for store.Recoverable.
var _ store.Recoverable = (*Store)(nil)

// Bounds Secrets Manager puts on a recovery window, in days.
const (
	minRecoveryDays = 7
	maxRecoveryDays = 30
)

// recoveryDays is window rounded up to whole days and clamped to the bounds
// Secrets Manager accepts (7 to 30 days).
func recoveryDays(window time.Duration) int64 {
	const day = 24 * time.Hour
	days := int64(window / day)
	if window%day > 0 {
		days++
	}
	return min(max(days, minRecoveryDays), maxRecoveryDays)
}

// ScheduleDelete schedules the secret for name for deletion with a recovery
// window: one DeleteSecret call without ForceDeleteWithoutRecovery, with
// RecoveryWindowInDays set to window rounded up to whole days and clamped to
// 7..30 (a minute becomes 7 days, 90 days become 30). Until AWS destroys the
// secret at the end of the window, Get answers ErrNotFound, List leaves the
// name out and RestoreDeleted brings the value back; Purge destroys it at
// once. Secrets Manager refuses a Create of the name until the secret is
// restored or gone.
//
// Errors: ErrInvalidName; ErrNotFound if the secret does not exist or is
// already scheduled for deletion (checked with DescribeSecret first, or
// answered by AWS when a concurrent call scheduled it in the meantime); a
// wrapped ErrUnreachable when AWS cannot be reached or the deadline passes;
// any other AWS error (for example a KMS or permission error) as a plain
// error. If the outcome is uncertain the secret is looked up again:
// scheduled for deletion (or gone) means success.
func (s *Store) ScheduleDelete(ctx context.Context, name string, window time.Duration) error {
	return s.deleteSecret(ctx, name, deletion{verb: "schedule delete", days: recoveryDays(window), done: notLive})
}

// RestoreDeleted cancels the scheduled deletion of the secret for name with
// one RestoreSecret call, so Get reads its value again. It first looks the
// secret up with DescribeSecret: a secret that exists and is not scheduled
// for deletion is left alone and the call succeeds.
//
// Errors: ErrInvalidName; ErrNotFound if the secret does not exist at all
// (never created, purged, or destroyed at the end of its recovery window);
// a wrapped ErrUnreachable when AWS cannot be reached or the deadline
// passes; any other AWS error as a plain error. If the outcome is uncertain
// the secret is looked up again: readable means success.
func (s *Store) RestoreDeleted(ctx context.Context, name string) error {
	c, state, cancel, err := s.begin(ctx, "restore", name)
	defer cancel()
	switch {
	case err != nil:
		return err
	case state == stateAbsent:
		return c.notFound(nil)
	case state == stateLive:
		return nil
	}

	opCtx, opCancel := recheckContext(c.ctx)
	defer opCancel()
	attempts := 0
	_, err = s.client.RestoreSecret(opCtx, &secretsmanager.RestoreSecretInput{SecretId: &c.id}, countAttempts(&attempts))
	if err == nil {
		return nil
	}
	// A ResourceNotFound (purged in the meantime) becomes ErrNotFound.
	return s.settle(c, attempts, err, func(st secretState) bool { return st == stateLive })
}

// Purge force-deletes (no recovery window) the secret for name, whether it
// is scheduled for deletion or not: one DeleteSecret call with
// ForceDeleteWithoutRecovery, after a DescribeSecret that checks the secret
// exists. AWS removes the secret asynchronously: a Create of the same name
// may be refused for a short while, which Create rides out.
//
// Errors: ErrInvalidName; ErrNotFound only if DescribeSecret says the secret
// does not exist (ResourceNotFound); a wrapped ErrUnreachable when AWS
// cannot be reached or the deadline passes; any other AWS error as a plain
// error. If the outcome is uncertain the secret is looked up again: gone
// means success (a secret still found scheduled for deletion does not count,
// since it may have been scheduled before the call).
func (s *Store) Purge(ctx context.Context, name string) error {
	return s.deleteSecret(ctx, name, deletion{verb: "purge", scheduled: true,
		done: func(st secretState) bool { return st == stateAbsent }})
}
