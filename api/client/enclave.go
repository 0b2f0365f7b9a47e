package client

import (
	"context"
	"net/http"
	"time"
)

// EnclaveInfo describes an enclave.
type EnclaveInfo struct {
	Name      string    `json:"name"`
	Admin     string    `json:"admin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// CreateEnclave creates an enclave administered by the admin identity.
// It returns ErrEnclaveExists if it exists. Only the cluster admin (or a
// policy allowing /v1/enclave/create/<name>) may create enclaves.
func (c *Client) CreateEnclave(ctx context.Context, name, admin string) error {
	body, err := jsonBody(struct {
		Admin string `json:"admin"`
	}{admin})
	if err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodPost, path: resource("/v1/enclave/create/", name), body: body}, nil)
}

// DescribeEnclave returns an enclave's metadata; ErrEnclaveNotFound if it
// does not exist.
func (c *Client) DescribeEnclave(ctx context.Context, name string) (EnclaveInfo, error) {
	var info EnclaveInfo
	err := c.call(ctx, &request{method: http.MethodGet, path: resource("/v1/enclave/describe/", name), idempotent: true}, &info)
	return info, err
}

// ListEnclaves returns the names of the enclaves starting with prefix.
func (c *Client) ListEnclaves(ctx context.Context, prefix string) ([]string, error) {
	var out struct {
		Names []string `json:"names"`
	}
	err := c.call(ctx, &request{method: http.MethodGet, path: resource("/v1/enclave/list/", prefix), idempotent: true}, &out)
	return out.Names, err
}

// DeleteEnclave deletes an enclave with its keys, policies and identities.
func (c *Client) DeleteEnclave(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: http.MethodDelete, path: resource("/v1/enclave/delete/", name)}, nil)
}

// WritePolicy creates or replaces a policy in the client's enclave.
func (c *Client) WritePolicy(ctx context.Context, name string, allow, deny []string) error {
	body, err := jsonBody(struct {
		Allow []string `json:"allow,omitempty"`
		Deny  []string `json:"deny,omitempty"`
	}{allow, deny})
	if err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodPost, path: resource("/v1/policy/write/", name), body: body, enclave: true, idempotent: true}, nil)
}

// AssignPolicy assigns identity to a policy in the client's enclave.
func (c *Client) AssignPolicy(ctx context.Context, policy, identity string) error {
	body, err := jsonBody(struct {
		Identity string `json:"identity"`
	}{identity})
	if err != nil {
		return err
	}
	return c.call(ctx, &request{method: http.MethodPost, path: resource("/v1/policy/assign/", policy), body: body, enclave: true, idempotent: true}, nil)
}

// DeletePolicy deletes a policy (and its assignments) in the client's
// enclave; ErrPolicyNotFound if there is none.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	return c.call(ctx, &request{method: http.MethodDelete, path: resource("/v1/policy/delete/", name), enclave: true}, nil)
}

// DeleteIdentity removes an identity's policy assignment in the client's
// enclave; ErrIdentityNotFound if it has none.
func (c *Client) DeleteIdentity(ctx context.Context, identity string) error {
	return c.call(ctx, &request{method: http.MethodDelete, path: resource("/v1/identity/delete/", identity), enclave: true}, nil)
}
