package aws

import (
	"bytes"
	"errors"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyraft/keyraft/store"
)

// listedVersion returns name's version in ListVersions(name).
func listedVersion(t *testing.T, s *Store, name string) string {
	t.Helper()
	entries, err := s.ListVersions(ctxFor(t, 10*time.Second), name)
	if err != nil {
		t.Fatalf("ListVersions(%q): %v", name, err)
	}
	if len(entries) != 1 || entries[0].Name != name {
		t.Fatalf("ListVersions(%q) = %v, want only %q", name, entries, name)
	}
	return entries[0].Version
}

// TestVersionChangesOnPutSecretValue: a new value put on the secret behind
// the Store's back (as an operator or another KES would) changes the listed
// and read version to the new version ID, and the new value is read.
func TestVersionChangesOnPutSecretValue(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	raw := rawClient(t)
	ctx := ctxFor(t, 20*time.Second)

	proxy.ResetCalls()
	v1, err := s.CreateVersion(ctx, "k", []byte("first"))
	if err != nil || v1 == "" {
		t.Fatalf("CreateVersion = (%q, %v), want a version", v1, err)
	}
	if n := proxy.Calls(""); n != 1 {
		t.Errorf("CreateVersion made %d AWS calls, want 1 (CreateSecret)", n)
	}
	proxy.ResetCalls()
	got, gv, err := s.GetVersion(ctx, "k")
	if err != nil || string(got) != "first" || gv != v1 {
		t.Fatalf("GetVersion = (%q, %q, %v), want (first, %q)", got, gv, err, v1)
	}
	if n := proxy.Calls("GetSecretValue"); n != 1 || proxy.Calls("") != 1 {
		t.Errorf("GetVersion made %d AWS calls, want 1 GetSecretValue", proxy.Calls(""))
	}
	if lv := listedVersion(t, s, "k"); lv != v1 {
		t.Fatalf("listed version = %q, want %q", lv, v1)
	}

	id := awssdk.String(s.prefix + "k")
	for _, tc := range []struct {
		in   secretsmanager.PutSecretValueInput
		want []byte
	}{
		{secretsmanager.PutSecretValueInput{SecretId: id, SecretString: awssdk.String("second")}, []byte("second")},
		{secretsmanager.PutSecretValueInput{SecretId: id, SecretBinary: []byte{0, 1, 0xff}}, []byte{0, 1, 0xff}},
	} {
		prev := listedVersion(t, s, "k")
		out, err := raw.PutSecretValue(ctx, &tc.in)
		if err != nil {
			t.Fatalf("PutSecretValue: %v", err)
		}
		put := awssdk.ToString(out.VersionId)
		if put == "" || put == prev {
			t.Fatalf("PutSecretValue version ID = %q, previous %q", put, prev)
		}
		if lv := listedVersion(t, s, "k"); lv != put {
			t.Fatalf("listed version after PutSecretValue = %q, want %q", lv, put)
		}
		got, gv, err := s.GetVersion(ctx, "k")
		if err != nil || !bytes.Equal(got, tc.want) || gv != put {
			t.Fatalf("GetVersion after PutSecretValue = (%q, %q, %v), want (%q, %q)", got, gv, err, tc.want, put)
		}
	}

	// Another secret's version is unaffected.
	other, err := s.CreateVersion(ctx, "other", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: id, SecretString: awssdk.String("third"),
	}); err != nil {
		t.Fatal(err)
	}
	if lv := listedVersion(t, s, "other"); lv != other {
		t.Fatalf("listed version of other = %q, want %q", lv, other)
	}
}

func TestCurrentVersion(t *testing.T) {
	for _, tc := range []struct {
		in   map[string][]string
		want string
	}{
		{nil, ""},
		{map[string][]string{"a": {"AWSPREVIOUS"}}, ""},
		{map[string][]string{"a": {"AWSPREVIOUS"}, "b": {"AWSPENDING", stageCurrent}, "c": nil}, "b"},
		{map[string][]string{"a": {stageCurrent}}, "a"},
	} {
		if got := currentVersion(tc.in); got != tc.want {
			t.Errorf("currentVersion(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestVersionedErrors: the Versioned methods keep the error contracts.
func TestVersionedErrors(t *testing.T) {
	t.Parallel()
	s, proxy := proxied(t, nil)
	ctx := ctxFor(t, 10*time.Second)
	if v, err := s.CreateVersion(ctx, "a b", []byte("v")); !errors.Is(err, store.ErrInvalidName) || v != "" {
		t.Errorf("CreateVersion(invalid) = (%q, %v), want ErrInvalidName", v, err)
	}
	if _, v, err := s.GetVersion(ctx, "missing"); !errors.Is(err, store.ErrNotFound) || v != "" {
		t.Errorf("GetVersion(missing) = (%q, %v), want ErrNotFound", v, err)
	}
	if _, err := s.CreateVersion(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.CreateVersion(ctx, "k", []byte("w")); !errors.Is(err, store.ErrExists) || v != "" {
		t.Errorf("CreateVersion(existing) = (%q, %v), want ErrExists", v, err)
	}
	proxy.SetDown(true)
	short := ctxFor(t, 2*time.Second)
	if _, _, err := s.GetVersion(short, "k"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("GetVersion while down = %v, want ErrUnreachable", err)
	}
	if _, err := s.ListVersions(short, ""); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("ListVersions while down = %v, want ErrUnreachable", err)
	}
}
