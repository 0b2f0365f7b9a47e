package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Secrets Manager error codes the RestoreSecret emulation answers with.
const (
	codeInvalidParameter = "InvalidParameterException"
	codeInvalidRequest   = "InvalidRequestException"
	codeInternal         = "InternalServiceError"
)

// Bounds AWS puts on DeleteSecret's RecoveryWindowInDays.
const (
	minRecoveryDays = 7
	maxRecoveryDays = 30
)

// emulationTimeout bounds the kumo calls one emulated operation makes. They
// run detached from the client's request, so that a client that gives up
// mid-way (a dropped or timed-out call) cannot leave a restore half done:
// an AWS call takes effect as a whole or not at all.
const emulationTimeout = 10 * time.Second

// restorer emulates RestoreSecret, which kumo v0.33.1 does not have (it
// answers InvalidAction), with kumo's own API. It sits in the Emulator's
// front proxy, so every client of Emulator.URL (the fault-injecting Proxy,
// the tests' raw SDK clients, stores pointed at the emulator directly) sees
// one consistent emulation; clients of Emulator.KumoURL bypass it.
//
// It handles two operations and forwards everything else untouched:
//
//   - DeleteSecret with a recovery window (no ForceDeleteWithoutRecovery):
//     it first reads the secret's current value (GetSecretValue) and its
//     metadata (DescribeSecret: name, ARN, description, KMS key, tags) from
//     kumo and keeps them in memory, then passes the call on; kumo marks the
//     secret scheduled for deletion (DeletedDate set, GetSecretValue and
//     PutSecretValue refused, left out of ListSecrets). As AWS does, it
//     rejects a window outside 7..30 days or combined with a force delete
//     (InvalidParameterException) and a second recovery-window delete of a
//     secret already scheduled (InvalidRequestException "... marked for
//     deletion"), which kumo would accept.
//   - RestoreSecret {"SecretId": ...}: for a scheduled secret it force-deletes
//     it in kumo and creates it again under the same name with the kept
//     value and metadata, answering {"ARN": ..., "Name": ...} as AWS does.
//     A secret that is not scheduled for deletion: success, unchanged. An
//     unknown secret: kumo's ResourceNotFoundException, in AWS's JSON error
//     shape ({"__type": ..., "message": ...}).
//
// A force delete drops what was kept. Differences from AWS: the restored
// secret has a new ARN suffix, a new creation date and a single version
// (the AWSCURRENT value, with a new version ID); older versions, rotation
// settings and resource policies are not carried over. A secret scheduled
// for deletion directly in kumo (through Emulator.KumoURL) cannot be
// restored: RestoreSecret answers InvalidRequestException. The emulated
// calls are serialised with each other, not with other calls: a secret
// being restored is briefly missing in kumo between the force delete and
// the re-create.
type restorer struct {
	backend string // kumo's endpoint
	client  *http.Client

	mu   sync.Mutex            // serialises the emulated operations
	kept map[string]keptSecret // by secret name: secrets scheduled for deletion
}

// keptSecret is what a recovery-window DeleteSecret took away.
type keptSecret struct {
	arn    string // the scheduled secret's, to tell a later secret of the name apart
	create createSecretInput
}

// createSecretInput is the CreateSecret call that re-creates a secret.
type createSecretInput struct {
	Name         string          `json:"Name"`
	Description  string          `json:"Description,omitempty"`
	KmsKeyID     string          `json:"KmsKeyId,omitempty"`
	SecretString *string         `json:"SecretString,omitempty"`
	SecretBinary []byte          `json:"SecretBinary,omitempty"`
	Tags         json.RawMessage `json:"Tags,omitempty"`
}

// secretDescription is the part of a DescribeSecret answer the emulation uses.
type secretDescription struct {
	ARN         string          `json:"ARN"`
	Name        string          `json:"Name"`
	Description string          `json:"Description"`
	KmsKeyID    string          `json:"KmsKeyId"`
	DeletedDate *float64        `json:"DeletedDate"`
	Tags        json.RawMessage `json:"Tags"`
}

// answer is one HTTP answer from kumo.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) ok() bool { return a.status == http.StatusOK }

// relay writes a to w.
func (a answer) relay(w http.ResponseWriter) {
	for _, h := range []string{"Content-Type", "X-Amzn-Requestid"} {
		if v := a.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func newRestorer(backend string) *restorer {
	return &restorer{
		backend: backend,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}},
		kept:    make(map[string]keptSecret),
	}
}

// close closes the idle connections to kumo.
func (e *restorer) close() { e.client.CloseIdleConnections() }

// serve answers r if it is a call the emulation handles and reports whether
// it did. body is r's body.
func (e *restorer) serve(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var err error
	switch Operation(r) {
	case "DeleteSecret":
		err = e.deleteSecret(w, body)
	case "RestoreSecret":
		err = e.restoreSecret(w, body)
	default:
		return false
	}
	if err != nil {
		// kumo could not be asked: a server error, which SDKs retry.
		writeAPIError(w, http.StatusInternalServerError, codeInternal, "awstest: RestoreSecret emulation: "+err.Error())
	}
	return true
}

// deleteSecret handles DeleteSecret: it keeps what a recovery-window delete
// takes away and forgets it on a force delete.
func (e *restorer) deleteSecret(w http.ResponseWriter, body []byte) error {
	var in struct {
		SecretID                   string `json:"SecretId"`
		RecoveryWindowInDays       *int64 `json:"RecoveryWindowInDays"`
		ForceDeleteWithoutRecovery bool   `json:"ForceDeleteWithoutRecovery"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), emulationTimeout)
	defer cancel()
	if err := json.Unmarshal(body, &in); err != nil || in.SecretID == "" {
		return e.pass(ctx, w, "DeleteSecret", body, nil) // kumo answers the malformed call
	}
	if days := in.RecoveryWindowInDays; days != nil {
		if in.ForceDeleteWithoutRecovery {
			writeAPIError(w, http.StatusBadRequest, codeInvalidParameter,
				"You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
			return nil
		}
		if *days < minRecoveryDays || *days > maxRecoveryDays {
			writeAPIError(w, http.StatusBadRequest, codeInvalidParameter,
				fmt.Sprintf("The RecoveryWindowInDays value must be between %d and %d days (inclusive).", minRecoveryDays, maxRecoveryDays))
			return nil
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	d, a, err := e.describe(ctx, in.SecretID)
	if err != nil {
		return err
	}
	if !a.ok() {
		a.relay(w) // not found
		return nil
	}
	if in.ForceDeleteWithoutRecovery {
		return e.pass(ctx, w, "DeleteSecret", body, func() { delete(e.kept, d.Name) })
	}
	if d.DeletedDate != nil {
		writeAPIError(w, http.StatusBadRequest, codeInvalidRequest,
			"You can't perform this operation on the secret because it was marked for deletion.")
		return nil
	}
	kept := keptSecret{arn: d.ARN, create: createSecretInput{
		Name: d.Name, Description: d.Description, KmsKeyID: d.KmsKeyID, Tags: d.Tags,
	}}
	a, err = e.call(ctx, "GetSecretValue", map[string]string{"SecretId": d.ARN})
	if err != nil {
		return err
	}
	if a.ok() { // (a secret without any value has nothing to keep)
		var v struct {
			SecretString *string `json:"SecretString"`
			SecretBinary []byte  `json:"SecretBinary"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			return fmt.Errorf("GetSecretValue answer: %w", err)
		}
		kept.create.SecretString, kept.create.SecretBinary = v.SecretString, v.SecretBinary
	}
	return e.pass(ctx, w, "DeleteSecret", body, func() { e.kept[d.Name] = kept })
}

// restoreSecret handles RestoreSecret.
func (e *restorer) restoreSecret(w http.ResponseWriter, body []byte) error {
	var in struct {
		SecretID string `json:"SecretId"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.SecretID == "" {
		writeAPIError(w, http.StatusBadRequest, codeInvalidParameter, "You must provide a value for the SecretId parameter.")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), emulationTimeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()

	d, a, err := e.describe(ctx, in.SecretID)
	switch {
	case err != nil:
		return err
	case !a.ok():
		a.relay(w) // ResourceNotFoundException
		return nil
	case d.DeletedDate == nil:
		writeJSON(w, restoreSecretOutput{ARN: d.ARN, Name: d.Name})
		return nil
	}
	k, ok := e.kept[d.Name]
	if !ok || k.arn != d.ARN {
		writeAPIError(w, http.StatusBadRequest, codeInvalidRequest, "awstest: cannot emulate RestoreSecret for "+d.Name+
			": it was scheduled for deletion directly in kumo, so its value was not kept")
		return nil
	}
	a, err = e.call(ctx, "DeleteSecret", map[string]any{"SecretId": d.ARN, "ForceDeleteWithoutRecovery": true})
	if err != nil || !a.ok() {
		return errorOf("DeleteSecret", a, err)
	}
	a, err = e.call(ctx, "CreateSecret", k.create)
	if err != nil || !a.ok() {
		return errorOf("CreateSecret", a, err)
	}
	var out restoreSecretOutput
	if err := json.Unmarshal(a.body, &out); err != nil {
		return fmt.Errorf("CreateSecret answer: %w", err)
	}
	delete(e.kept, d.Name)
	writeJSON(w, out)
	return nil
}

// restoreSecretOutput is RestoreSecret's answer.
type restoreSecretOutput struct {
	ARN  string `json:"ARN"`
	Name string `json:"Name"`
}

// describe calls DescribeSecret. On a non-200 answer d is empty.
func (e *restorer) describe(ctx context.Context, id string) (secretDescription, answer, error) {
	var d secretDescription
	a, err := e.call(ctx, "DescribeSecret", map[string]string{"SecretId": id})
	if err != nil || !a.ok() {
		return d, a, err
	}
	if err := json.Unmarshal(a.body, &d); err != nil {
		return d, a, fmt.Errorf("DescribeSecret answer: %w", err)
	}
	return d, a, nil
}

// pass sends the client's call on to kumo and relays the answer; done, if
// not nil, runs before that when kumo accepted the call.
func (e *restorer) pass(ctx context.Context, w http.ResponseWriter, op string, body []byte, done func()) error {
	a, err := e.send(ctx, op, body)
	if err != nil {
		return err
	}
	if a.ok() && done != nil {
		done()
	}
	a.relay(w)
	return nil
}

// call makes one unsigned JSON call of op with input in to kumo.
func (e *restorer) call(ctx context.Context, op string, in any) (answer, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return answer{}, err
	}
	return e.send(ctx, op, body)
}

// send posts body as a Secrets Manager call of op to kumo.
func (e *restorer) send(ctx context.Context, op string, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.backend+"/", bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager."+op)
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errorOf describes a failed kumo call.
func errorOf(op string, a answer, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s answered %d: %s", op, a.status, bytes.TrimSpace(a.body))
}

// writeJSON answers 200 OK with v as an awsJson1.1 body.
func writeJSON(w http.ResponseWriter, v any) {
	writeAWSJSON(w, http.StatusOK, "awstest-emulated", v)
}

// writeAPIError answers with an AWS JSON error: {"__type": code, "message": message}.
func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	writeAWSJSON(w, status, "awstest-emulated", map[string]string{"__type": code, "message": message})
}

// writeAWSJSON answers with status and v as an awsJson1.1 body.
func writeAWSJSON(w http.ResponseWriter, status int, requestID string, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
