package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"testing"
	"time"
)

// kesSDKSelf has the field names and types that the KES SDK MinIO ships
// (github.com/minio/kms-go/kes v0.3.1, Client.DescribeSelf) decodes a
// /v1/identity/self/describe body into: "policy" is a string, "allow" and
// "deny" are maps of rule objects at the top level (kes-api.md §1.6).
type kesSDKSelf struct {
	Identity  string              `json:"identity"`
	IsAdmin   bool                `json:"admin"`
	TTL       string              `json:"ttl"`
	ExpiresAt time.Time           `json:"expires_at"`
	CreatedAt time.Time           `json:"created_at"`
	CreatedBy string              `json:"created_by"`
	Children  []string            `json:"children"`
	Policy    string              `json:"policy"`
	Allow     map[string]struct{} `json:"allow"`
	Deny      map[string]struct{} `json:"deny"`
}

// TestSelfDescribeDecodesInKESSDK decodes every caller's self-description
// into the KES SDK's response shape, rejecting any member it does not know,
// and checks what the SDK then reports.
func TestSelfDescribeDecodesInKESSDK(t *testing.T) {
	e := newEnv(t)
	e.backend.setPolicy("default", "minio", []string{"/v1/key/generate/*", "/v1/status"}, []string{"/v1/key/generate/x*"}, e.user.identity)
	e.backend.setPolicy("default", "empty", nil, nil, e.rsaUser.identity)
	decode := func(c *client) kesSDKSelf {
		t.Helper()
		r := c.get("/v1/identity/self/describe")
		expectOK(t, r)
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		var got kesSDKSelf
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("the KES SDK cannot decode %s: %v", r.body, err)
		}
		return got
	}
	keys := func(m map[string]struct{}) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}

	admin := decode(e.admin)
	if admin.Identity != e.admin.identity || !admin.IsAdmin || admin.Policy != "" || admin.Allow != nil {
		t.Fatalf("admin: %+v", admin)
	}

	user := decode(e.user)
	if user.Identity != e.user.identity || user.IsAdmin || user.Policy != "minio" || user.CreatedBy != e.admin.identity || user.CreatedAt.IsZero() {
		t.Fatalf("user: %+v", user)
	}
	if got, want := keys(user.Allow), []string{"/v1/key/generate/*", "/v1/status"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("user allow = %v, want %v", got, want)
	}
	if got, want := keys(user.Deny), []string{"/v1/key/generate/x*"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("user deny = %v, want %v", got, want)
	}

	empty := decode(e.rsaUser)
	if empty.Policy != "empty" || empty.IsAdmin || len(empty.Allow) != 0 || len(empty.Deny) != 0 {
		t.Fatalf("identity with an empty policy: %+v", empty)
	}
}
