package aws

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/store"
)

// stageCurrent is the staging label of a secret's current version.
const stageCurrent = "AWSCURRENT"

// Create stores value under name as a new secret: as SecretString when the
// value is printable ASCII text (what KES writes, e.g. base64), otherwise as
// SecretBinary; with Config.KMSKey if set.
//
// Errors: ErrInvalidName for a name Secrets Manager cannot hold; ErrExists if
// the secret exists; a wrapped ErrUnreachable when AWS cannot be reached or
// the deadline passes; a plain error for an empty value, a value over 64 KiB,
// or any other AWS error. The call first waits for a slot of the create rate
// limit, bounded only by ctx (queued creates do not spend their call
// timeout). If the outcome is uncertain (a retried call, a dropped connection)
// the secret is read back: holding exactly value means success, holding
// another value means ErrExists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	_, err := s.CreateVersion(ctx, name, value)
	return err
}

// CreateVersion is Create that also returns the version ID of the secret's
// first version, as CreateSecret reported it. When the outcome had to be
// settled by reading the secret back, it returns the version ID that read
// reported ("" if AWS sent none). It fails exactly like Create and returns ""
// with every error.
func (s *Store) CreateVersion(ctx context.Context, name string, value []byte) (string, error) {
	id, err := s.secretID(name)
	if err != nil {
		return "", err
	}
	what := fmt.Sprintf("create %q", name)
	if len(value) == 0 || len(value) > maxValueLen {
		return "", fmt.Errorf("aws: %s: value of %d bytes, must be 1 to %d bytes", what, len(value), maxValueLen)
	}
	in := &secretsmanager.CreateSecretInput{Name: &id}
	if isText(value) {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = value
	}
	if s.kmsKey != "" {
		in.KmsKeyId = awssdk.String(s.kmsKey)
	}

	if err := s.creates.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return "", wrap(ctx, what, ctx.Err())
		}
		// The wait would outlast ctx's deadline.
		return "", fmt.Errorf("aws: %s: create rate limit: %w: %w (%v)", what, store.ErrUnreachable, context.DeadlineExceeded, err)
	}
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	opCtx, opCancel := recheckContext(callCtx)
	defer opCancel()

	for retry := 1; ; retry++ {
		attempts := 0
		out, err := s.client.CreateSecret(opCtx, in, countAttempts(&attempts))
		switch {
		case err == nil:
			if attempts > 1 {
				s.logger.Debug("create succeeded after retries", "secret", id, "attempts", attempts)
			}
			return awssdk.ToString(out.VersionId), nil
		case errorCode(err) == codeResourceExists && attempts == 1:
			return "", wrap(callCtx, what, err)
		case isDeleting(err):
			// A force-deleted secret of the same name is still going away.
			s.logger.Debug("secret name still scheduled for deletion, retrying create", "secret", id, "retry", retry)
			if serr := sleep(opCtx, jitter(deletionBackoff, retry)); serr != nil {
				return "", wrap(callCtx, what, fmt.Errorf("%w (the name is still scheduled for deletion: %v)", serr, err))
			}
			continue
		}
		return s.settleCreate(callCtx, what, id, value, attempts, err)
	}
}

// settleCreate decides a failed CreateSecret whose outcome may be uncertain
// by reading the secret back. On success it returns the version ID the read
// reported.
func (s *Store) settleCreate(ctx context.Context, what, id string, value []byte, attempts int, cause error) (string, error) {
	// A call answered with an API error on its only attempt was rejected as
	// a whole; a call never sent (attempts == 0) changed nothing. Without
	// time left (or after a cancel) nothing can be checked.
	certain := attempts == 0 || (attempts == 1 && errorCode(cause) != "")
	if certain || ctx.Err() != nil || errors.Is(cause, context.Canceled) {
		return "", wrap(ctx, what, cause)
	}
	got, version, err := s.getValue(ctx, id)
	if err != nil {
		s.logger.Debug("create outcome unknown, re-check failed", "secret", id, "error", cause, "recheck_error", err)
		return "", wrap(ctx, what, cause)
	}
	defer clear(got)
	if subtle.ConstantTimeCompare(got, value) == 1 {
		s.logger.Info("create confirmed by reading the secret back after an error",
			"secret", id, "attempts", attempts, "error", cause)
		return version, nil
	}
	return "", fmt.Errorf("aws: %s: %w", what, store.ErrExists)
}

// isText reports whether v is printable ASCII (plus tab, CR, LF): safe to
// store as SecretString, which AWS requires to be text.
func isText(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// Get returns the value of the secret for name: its SecretString if set,
// else its SecretBinary. The caller owns the returned slice.
//
// Errors: ErrInvalidName; ErrNotFound if the secret does not exist or is
// scheduled for deletion; a wrapped ErrUnreachable when AWS cannot be reached
// or the deadline passes; any other AWS error as a plain error.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	value, _, err := s.GetVersion(ctx, name)
	return value, err
}

// GetVersion is Get that also returns the version ID of the value it read
// (the AWSCURRENT version), from the same GetSecretValue answer ("" if AWS
// sent none). It fails exactly like Get and returns "" with every error.
func (s *Store) GetVersion(ctx context.Context, name string) ([]byte, string, error) {
	id, err := s.secretID(name)
	if err != nil {
		return nil, "", err
	}
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	v, version, err := s.getValue(callCtx, id)
	if err != nil {
		return nil, "", wrap(callCtx, fmt.Sprintf("get %q", name), err)
	}
	return v, version, nil
}

// getValue reads a secret's current value and its version ID with one
// GetSecretValue call.
func (s *Store) getValue(ctx context.Context, id string) ([]byte, string, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &id})
	switch {
	case err != nil && isDeleting(err):
		return nil, "", fmt.Errorf("%w (%v)", store.ErrNotFound, err)
	case err != nil:
		return nil, "", err
	case out.SecretString != nil:
		return []byte(*out.SecretString), awssdk.ToString(out.VersionId), nil
	case out.SecretBinary != nil:
		return out.SecretBinary, awssdk.ToString(out.VersionId), nil
	default:
		return nil, "", errors.New("the secret has neither SecretString nor SecretBinary")
	}
}

// Delete force-deletes (no recovery window) the secret for name.
//
// Errors: ErrInvalidName; ErrNotFound if the secret did not exist, or was
// scheduled for deletion, when the call started (checked with
// DescribeSecret first, because AWS answers a force-delete of a missing
// secret with success); a wrapped ErrUnreachable when AWS cannot be reached
// or the deadline passes; any other AWS error as a plain error. If the
// delete's outcome is uncertain the secret is looked up again: gone (or
// scheduled for deletion) means success. Two concurrent Deletes of one
// secret may both succeed. Purge also deletes a secret that is scheduled.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.deleteSecret(ctx, name, deletion{verb: "delete", done: notLive})
}

// deletion is one kind of DeleteSecret call: Delete, ScheduleDelete or Purge.
type deletion struct {
	verb string // names the call in messages and logs
	// days is the recovery window; 0 force-deletes without recovery.
	days int64
	// scheduled also deletes a secret that is already scheduled for
	// deletion; otherwise such a secret is ErrNotFound.
	scheduled bool
	// done reports whether a secret found in this state after an uncertain
	// outcome shows that the call took effect.
	done func(secretState) bool
}

// deleteSecret makes one DeleteSecret call as del says, after checking with
// DescribeSecret that the secret is there (ErrNotFound otherwise). A failure
// whose outcome is uncertain is settled by looking the secret up again.
func (s *Store) deleteSecret(ctx context.Context, name string, del deletion) error {
	c, state, cancel, err := s.begin(ctx, del.verb, name)
	defer cancel()
	if err != nil {
		return err
	}
	if state == stateAbsent || (state == stateScheduled && !del.scheduled) {
		return c.notFound(nil)
	}

	in := &secretsmanager.DeleteSecretInput{SecretId: &c.id}
	if del.days > 0 {
		in.RecoveryWindowInDays = awssdk.Int64(del.days)
	} else {
		in.ForceDeleteWithoutRecovery = awssdk.Bool(true)
	}
	opCtx, opCancel := recheckContext(c.ctx)
	defer opCancel()
	attempts := 0
	_, err = s.client.DeleteSecret(opCtx, in, countAttempts(&attempts))
	switch {
	case err == nil:
		return nil
	case errorCode(err) == codeResourceNotFound:
		// It existed a moment ago: an earlier attempt of this call (whose
		// answer was lost) or a concurrent Delete or Purge removed it.
		s.logger.Debug("secret gone before "+del.verb+" answered", "secret", c.id, "attempts", attempts)
		return nil
	case del.days > 0 && isDeleting(err) && attempts > 1:
		// An earlier attempt of this call, whose answer was lost, scheduled it.
		s.logger.Debug("secret already scheduled for deletion on a retry", "secret", c.id, "attempts", attempts)
		return nil
	case del.days > 0 && isDeleting(err):
		// Scheduled by someone else since the check.
		return c.notFound(err)
	}
	return s.settle(c, attempts, err, del.done)
}

// secretCall is one Store method's work on one secret.
type secretCall struct {
	id   string          // the secret's name (Prefix + name)
	verb string          // names the method in logs, e.g. "purge"
	what string          // names the method and entry in errors, e.g. `purge "k"`
	ctx  context.Context // the caller's context bounded by the call timeout
}

// notFound returns ErrNotFound for c, noting cause if not nil.
func (c secretCall) notFound(cause error) error {
	if cause != nil {
		return fmt.Errorf("aws: %s: %w (%v)", c.what, store.ErrNotFound, cause)
	}
	return fmt.Errorf("aws: %s: %w", c.what, store.ErrNotFound)
}

// begin starts verb on the secret for name: it checks name, bounds ctx by
// the call timeout and looks the secret up with DescribeSecret. The caller
// must call cancel, also when err is not nil; err is ready to return.
func (s *Store) begin(ctx context.Context, verb, name string) (secretCall, secretState, context.CancelFunc, error) {
	id, err := s.secretID(name)
	if err != nil {
		return secretCall{}, stateAbsent, func() {}, err
	}
	callCtx, cancel := s.callContext(ctx)
	c := secretCall{id: id, verb: verb, what: fmt.Sprintf("%s %q", verb, name), ctx: callCtx}
	state, err := s.state(callCtx, id)
	if err != nil {
		return c, state, cancel, wrap(callCtx, c.what, err)
	}
	return c, state, cancel, nil
}

// settle decides a failed call c whose outcome may be uncertain by looking
// the secret up again: success if done holds for the state found. A call
// answered with an API error on its only attempt was rejected as a whole,
// and one never sent (attempts == 0) changed nothing; without time left (or
// after a cancel) nothing can be checked. Those return the call's error.
func (s *Store) settle(c secretCall, attempts int, err error, done func(secretState) bool) error {
	switch {
	case attempts == 1 && errorCode(err) != "", attempts == 0:
		return wrap(c.ctx, c.what, err)
	case c.ctx.Err() != nil || errors.Is(err, context.Canceled):
		return wrap(c.ctx, c.what, err)
	}
	if state, cerr := s.state(c.ctx, c.id); cerr == nil && done(state) {
		s.logger.Info(c.verb+" confirmed by looking the secret up after an error",
			"secret", c.id, "attempts", attempts, "error", err)
		return nil
	}
	return wrap(c.ctx, c.what, err)
}

// secretState is what DescribeSecret says about a secret.
type secretState int

const (
	stateAbsent    secretState = iota // no such secret (ResourceNotFound)
	stateScheduled                    // scheduled for deletion (DeletedDate set)
	stateLive                         // readable
)

func notLive(st secretState) bool { return st != stateLive }

// state looks a secret up with one DescribeSecret call.
func (s *Store) state(ctx context.Context, id string) (secretState, error) {
	out, err := s.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &id})
	switch {
	case errorCode(err) == codeResourceNotFound:
		return stateAbsent, nil
	case err != nil:
		return stateAbsent, err
	case out.DeletedDate != nil:
		return stateScheduled, nil
	default:
		return stateLive, nil
	}
}

// List returns the names (Prefix stripped) of all secrets whose name starts
// with Config.Prefix followed by prefix, sorted ascending. Secrets scheduled
// for deletion are left out. It pages through ListSecrets without service-side
// filters (100 per page), so its cost grows with every secret in the region.
//
// Errors: a wrapped ErrUnreachable when AWS cannot be reached or the deadline
// passes; any other AWS error as a plain error.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	entries, err := s.ListVersions(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return store.Names(entries), nil
}

// ListVersions is List that also returns each secret's current version: the
// version ID that ListSecrets reports with the stage AWSCURRENT ("" if none
// has it). A secret listed twice (pages overlap when secrets change while
// List pages) appears once, with the version from its last listing. It
// makes the same calls as List and fails exactly like it.
func (s *Store) ListVersions(ctx context.Context, prefix string) ([]store.Entry, error) {
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	pages := secretsmanager.NewListSecretsPaginator(s.client,
		&secretsmanager.ListSecretsInput{MaxResults: awssdk.Int32(100)},
		func(o *secretsmanager.ListSecretsPaginatorOptions) { o.StopOnDuplicateToken = true })
	entries := []store.Entry{}
	seen := make(map[string]int) // name -> index in entries
	for pages.HasMorePages() {
		page, err := pages.NextPage(callCtx)
		if err != nil {
			return nil, wrap(callCtx, fmt.Sprintf("list %q", prefix), err)
		}
		for _, e := range page.SecretList {
			if e.Name == nil || e.DeletedDate != nil {
				continue
			}
			n, ok := strings.CutPrefix(*e.Name, s.prefix)
			if !ok || n == "" || !strings.HasPrefix(n, prefix) {
				continue
			}
			version := currentVersion(e.SecretVersionsToStages)
			if i, dup := seen[n]; dup {
				entries[i].Version = version
				continue
			}
			seen[n] = len(entries)
			entries = append(entries, store.Entry{Name: n, Version: version})
		}
	}
	slices.SortFunc(entries, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// currentVersion returns the version ID whose stages include AWSCURRENT, or
// "" if there is none.
func currentVersion(versionsToStages map[string][]string) string {
	for id, stages := range versionsToStages {
		if slices.Contains(stages, stageCurrent) {
			return id
		}
	}
	return ""
}

// Status makes one ListSecrets call (MaxResults 1, at most one retry), the
// cheapest authenticated Secrets Manager call, and reports its latency.
//
// Errors: a wrapped ErrUnreachable for network errors and timeouts; a plain
// error when AWS answers with an error (for example rejected credentials).
func (s *Store) Status(ctx context.Context) (store.State, error) {
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	start := time.Now()
	_, err := s.client.ListSecrets(callCtx, &secretsmanager.ListSecretsInput{MaxResults: awssdk.Int32(1)},
		withStatusAttempts)
	latency := time.Since(start)
	if err != nil {
		return store.State{}, wrap(callCtx, "status", err)
	}
	return store.State{Latency: latency}, nil
}
