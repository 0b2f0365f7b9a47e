package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// PolicyInfo describes a policy (GET /v1/policy/describe/<name>).
type PolicyInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Policy is a policy with its allow and deny path patterns (GET
// /v1/policy/read/<name>). Patterns are sorted.
type Policy struct {
	Name      string    `json:"name"`
	Allow     Patterns  `json:"allow,omitempty"`
	Deny      Patterns  `json:"deny,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Patterns is a list of policy path patterns. It decodes from a JSON object
// whose keys are the patterns (current KES) or from a JSON array of strings
// (KES 2023), and encodes as an array.
type Patterns []string

// UnmarshalJSON decodes either form; any other JSON value is an error.
func (p *Patterns) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		sort.Strings(list)
		*p = list
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("client: policy patterns: %w", err)
	}
	list := make([]string, 0, len(m))
	for k := range m {
		list = append(list, k)
	}
	sort.Strings(list)
	*p = list
	return nil
}

// IdentityInfo describes an identity.
type IdentityInfo struct {
	Identity  string    `json:"identity,omitempty"`
	IsAdmin   bool      `json:"admin,omitempty"`
	Policy    string    `json:"policy,omitempty"` // name of the assigned policy
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// DescribePolicy returns metadata about a policy; ErrPolicyNotFound if it
// does not exist.
func (c *Client) DescribePolicy(ctx context.Context, name string) (PolicyInfo, error) {
	var info PolicyInfo
	err := c.call(ctx, &request{method: "GET", path: resource("/v1/policy/describe/", name), enclave: true, idempotent: true}, &info)
	if err == nil && info.Name == "" {
		info.Name = name
	}
	return info, err
}

// ReadPolicy returns a policy with its patterns; ErrPolicyNotFound if it does
// not exist.
func (c *Client) ReadPolicy(ctx context.Context, name string) (Policy, error) {
	var p Policy
	err := c.call(ctx, &request{method: "GET", path: resource("/v1/policy/read/", name), enclave: true, idempotent: true}, &p)
	if err == nil && p.Name == "" {
		p.Name = name
	}
	return p, err
}

// ListPolicies returns one page of policy names starting with prefix, like ListKeys.
func (c *Client) ListPolicies(ctx context.Context, prefix, continueAt string) ([]string, string, error) {
	return c.listPage(ctx, "/v1/policy/list/", prefix, continueAt)
}

// ListAllPolicies returns all policy names starting with prefix, like ListAllKeys.
func (c *Client) ListAllPolicies(ctx context.Context, prefix string) ([]string, error) {
	return listAll(ctx, prefix, c.ListPolicies)
}

// DescribeIdentity returns what the server knows about an identity;
// ErrIdentityNotFound if it is neither the admin nor assigned to a policy.
func (c *Client) DescribeIdentity(ctx context.Context, id string) (IdentityInfo, error) {
	var info IdentityInfo
	err := c.call(ctx, &request{method: "GET", path: resource("/v1/identity/describe/", id), enclave: true, idempotent: true}, &info)
	if err == nil && info.Identity == "" {
		info.Identity = id
	}
	return info, err
}

// ListIdentities returns one page of identities starting with prefix, like ListKeys.
func (c *Client) ListIdentities(ctx context.Context, prefix, continueAt string) ([]string, string, error) {
	return c.listPage(ctx, "/v1/identity/list/", prefix, continueAt)
}

// ListAllIdentities returns all identities starting with prefix, like ListAllKeys.
func (c *Client) ListAllIdentities(ctx context.Context, prefix string) ([]string, error) {
	return listAll(ctx, prefix, c.ListIdentities)
}

// DescribeSelf returns the caller's own identity and, for non-admins, its
// policy (nil when the server sends none) (GET /v1/identity/self/describe).
// It understands the current response shape (policy as an object), the KES
// SDK shape (policy name plus top-level allow/deny) and the 2023 shape
// (policy_name plus a policy object). KES servers answer ErrIdentityNotFound
// for non-admins (a known server bug).
func (c *Client) DescribeSelf(ctx context.Context) (IdentityInfo, *Policy, error) {
	var resp struct {
		Identity   string          `json:"identity"`
		Admin      bool            `json:"admin"`
		PolicyName string          `json:"policy_name"`
		Policy     json.RawMessage `json:"policy"`
		Allow      Patterns        `json:"allow"`
		Deny       Patterns        `json:"deny"`
		CreatedAt  time.Time       `json:"created_at"`
		CreatedBy  string          `json:"created_by"`
	}
	err := c.call(ctx, &request{method: "GET", path: "/v1/identity/self/describe", enclave: true, idempotent: true}, &resp)
	if err != nil {
		return IdentityInfo{}, nil, err
	}
	info := IdentityInfo{
		Identity:  resp.Identity,
		IsAdmin:   resp.Admin,
		Policy:    resp.PolicyName,
		CreatedAt: resp.CreatedAt,
		CreatedBy: resp.CreatedBy,
	}
	var policy *Policy
	raw := bytes.TrimSpace(resp.Policy)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &info.Policy); err != nil {
			return IdentityInfo{}, nil, fmt.Errorf("client: self describe: invalid policy: %w", err)
		}
	default:
		policy = new(Policy)
		if err := json.Unmarshal(raw, policy); err != nil {
			return IdentityInfo{}, nil, fmt.Errorf("client: self describe: invalid policy: %w", err)
		}
	}
	if policy == nil && (len(resp.Allow) > 0 || len(resp.Deny) > 0) {
		policy = &Policy{Allow: resp.Allow, Deny: resp.Deny}
	}
	if policy != nil {
		if policy.Name == "" {
			policy.Name = info.Policy
		}
		if info.Policy == "" {
			info.Policy = policy.Name
		}
	}
	return info, policy, nil
}
