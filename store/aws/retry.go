package aws

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyraft/keyraft/store"
)

// Retry tuning. The attempt budget is generous because every call also has a
// deadline: retries stop at whichever comes first.
const (
	maxAttempts      = 10
	statusAttempts   = 2 // Status answers quickly instead of riding out an outage
	baseBackoff      = 50 * time.Millisecond
	throttleBackoff  = 200 * time.Millisecond
	maxBackoff       = 3 * time.Second
	deletionBackoff  = 250 * time.Millisecond // re-create of a name still being deleted
	recheckReserve   = 2 * time.Second        // at most this much of a deadline is kept for re-checks
	recheckFraction  = 5                      // ... and at most 1/recheckFraction of it
	attemptCounterID = "keyraftCountAttempts"
)

// Secrets Manager error codes the Store interprets.
const (
	codeResourceExists   = "ResourceExistsException"
	codeResourceNotFound = "ResourceNotFoundException"
	codeInvalidRequest   = "InvalidRequestException"
)

// newRetryer is the SDK's standard retryer with a larger attempt budget, a
// shorter full-jitter exponential backoff, and no client-side retry quota:
// the quota would fail calls outright during a throttling burst, while our
// deadlines and the create token bucket already bound the extra load.
func newRetryer() awssdk.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		throttles := retry.IsErrorThrottles(o.Throttles)
		o.Backoff = retry.BackoffDelayerFunc(func(attempt int, err error) (time.Duration, error) {
			base := baseBackoff
			if throttles.IsErrorThrottle(err) == awssdk.TrueTernary {
				base = throttleBackoff
			}
			return jitter(base, attempt), nil
		})
	})
}

// jitter returns a full-jitter exponential delay for the given 1-based
// attempt: uniform in [0, min(maxBackoff, base*2^(attempt-1))).
func jitter(base time.Duration, attempt int) time.Duration {
	d := maxBackoff
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 16 {
		if e := base << (attempt - 1); e < d {
			d = e
		}
	}
	return rand.N(d) + 1
}

// countAttempts returns a per-call option that counts the HTTP attempts the
// SDK makes for one operation (1 = no retry) into *n.
func countAttempts(n *int) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			// The deserialize step runs once per attempt, inside the retry loop.
			return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc(attemptCounterID,
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
					middleware.DeserializeOutput, middleware.Metadata, error,
				) {
					*n++
					return next.HandleDeserialize(ctx, in)
				}), middleware.Before)
		})
	}
}

// withStatusAttempts limits one call to statusAttempts attempts.
func withStatusAttempts(o *secretsmanager.Options) { o.RetryMaxAttempts = statusAttempts }

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// isDeleting reports whether err says the secret is scheduled for (or in the
// middle of) deletion. AWS and the emulator word this differently.
func isDeleting(err error) bool {
	if errorCode(err) != codeInvalidRequest {
		return false
	}
	var apiErr smithy.APIError
	errors.As(err, &apiErr)
	return strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "for deletion")
}

// isTransport reports whether err means AWS could not be reached or did not
// answer: a network error or a deadline.
func isTransport(err error) bool {
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	var urlErr *url.Error
	return errors.As(err, &sendErr) || errors.As(err, &netErr) || errors.As(err, &urlErr) ||
		errors.Is(err, context.DeadlineExceeded)
}

// wrap turns an SDK error into the store's error vocabulary. callCtx is the
// call's context (caller's ctx plus the call timeout); what names the call
// for the message, e.g. `get "name"`.
func wrap(callCtx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		// The caller gave up: report its error, not an outage.
		return fmt.Errorf("aws: %s: %w", what, err)
	case errors.Is(callCtx.Err(), context.Canceled):
		return fmt.Errorf("aws: %s: %w (%v)", what, context.Canceled, err)
	case errorCode(err) == codeResourceNotFound:
		return fmt.Errorf("aws: %s: %w", what, store.ErrNotFound)
	case errorCode(err) == codeResourceExists:
		return fmt.Errorf("aws: %s: %w", what, store.ErrExists)
	case isTransport(err) || callCtx.Err() != nil:
		return fmt.Errorf("aws: %s: %w: %w", what, store.ErrUnreachable, err)
	default:
		return fmt.Errorf("aws: %s: %w", what, err)
	}
}

// recheckContext splits the call deadline: the returned context ends early,
// keeping a reserve of the remaining time so the real state can be read back
// if the operation's outcome is uncertain.
func recheckContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(time.Until(deadline)/recheckFraction, recheckReserve)
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// sleep waits d or until ctx ends, returning ctx.Err() in the latter case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
