package enclave

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/keyraft/keyraft/internal/kes"
	"github.com/keyraft/keyraft/store/mem"
)

// keystoreImage returns every keystore entry with its value.
func keystoreImage(t *testing.T, st *mem.Store) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	names, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	img := map[string][]byte{}
	for _, n := range names {
		v, err := st.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		img[n] = v
	}
	return img
}

// TestExecuteRefusesInvalidOps sends the leader ops that no API request can
// produce, as a compromised or buggy member could forward them, and checks
// that each is refused with the API's error before anything is proposed or
// touches the keystore, and that the seal entry survives.
func TestExecuteRefusesInvalidOps(t *testing.T) {
	ctx := context.Background()
	s, st, f := newTestService(t)
	if err := s.CreateEnclave(ctx, "t1", admin, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePolicy(ctx, "t1", "p", []string{"/v1/key/*"}, nil, admin); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, "t1", "k", admin); err != nil {
		t.Fatal(err)
	}
	seal, err := st.Get(ctx, SealName)
	if err != nil {
		t.Fatal(err)
	}

	huge := []string{strings.Repeat("a", maxPolicySize/2), strings.Repeat("b", maxPolicySize/2)}
	key32 := bytes.Repeat([]byte{1}, 32)

	tests := []struct {
		name string
		op   Op
		want kes.Error
	}{
		{"delete the seal entry", Op{Kind: OpDeleteKey, Enclave: DefaultEnclave, Name: SealName, Identity: admin}, InvalidKeyName(SealName)},
		{"load the seal entry", Op{Kind: OpLoadKey, Enclave: DefaultEnclave, Name: SealName}, InvalidKeyName(SealName)},
		{"create the seal entry", Op{Kind: OpCreateKey, Enclave: DefaultEnclave, Name: SealName, Identity: admin}, InvalidKeyName(SealName)},
		{"import over the seal entry", Op{Kind: OpImportKey, Enclave: DefaultEnclave, Name: SealName, Key: key32, Cipher: "AES256", Identity: admin}, InvalidKeyName(SealName)},
		{"a stranger deletes the seal entry", Op{Kind: OpDeleteKey, Enclave: DefaultEnclave, Name: SealName, Identity: "stranger"}, InvalidKeyName(SealName)},
		{"delete a namespaced entry by name", Op{Kind: OpDeleteKey, Enclave: DefaultEnclave, Name: "keyraft.e.t1.k", Identity: admin}, InvalidKeyName("keyraft.e.t1.k")},
		{"key name with a slash", Op{Kind: OpCreateKey, Enclave: DefaultEnclave, Name: "../k", Identity: admin}, InvalidKeyName("../k")},
		{"empty key name", Op{Kind: OpDeleteKey, Enclave: "t1", Name: "", Identity: admin}, InvalidKeyName("")},
		{"key name too long", Op{Kind: OpCreateKey, Enclave: "t1", Name: strings.Repeat("k", 81), Identity: admin}, InvalidKeyName(strings.Repeat("k", 81))},
		{"enclave name with a dot", Op{Kind: OpDeleteKey, Enclave: "t1.k", Name: "x", Identity: admin}, InvalidEnclaveName("t1.k")},
		{"empty enclave name", Op{Kind: OpCreateKey, Enclave: "", Name: "x", Identity: admin}, InvalidEnclaveName("")},
		{"create key in a missing enclave", Op{Kind: OpCreateKey, Enclave: "nope", Name: "x", Identity: admin}, kes.ErrEnclaveNotFound},
		{"load key in a missing enclave", Op{Kind: OpLoadKey, Enclave: "nope", Name: "x"}, kes.ErrEnclaveNotFound},
		{"policy in a missing enclave", Op{Kind: OpWritePolicy, Enclave: "nope", Name: "p", Identity: admin}, kes.ErrEnclaveNotFound},
		{"import a short key", Op{Kind: OpImportKey, Enclave: DefaultEnclave, Name: "imp", Key: key32[:31], Cipher: "AES256", Identity: admin}, errKeySize("AES256")},
		{"import a long key", Op{Kind: OpImportKey, Enclave: DefaultEnclave, Name: "imp", Key: append(key32, 1), Cipher: "AES256", Identity: admin}, errKeySize("AES256")},
		{"import an unknown cipher", Op{Kind: OpImportKey, Enclave: DefaultEnclave, Name: "imp", Key: key32, Cipher: "DES", Identity: admin}, errUnsupportedCipher("DES")},
		{"create the default enclave", Op{Kind: OpCreateEnclave, Enclave: DefaultEnclave, Admin: admin, Identity: admin}, kes.ErrEnclaveExists},
		{"delete the default enclave", Op{Kind: OpDeleteEnclave, Enclave: DefaultEnclave, Identity: admin}, errCannotDeleteDefault},
		{"enclave admin not an identity", Op{Kind: OpCreateEnclave, Enclave: "t2", Admin: "a b", Identity: admin}, InvalidIdentity("a b")},
		{"enclave without admin", Op{Kind: OpCreateEnclave, Enclave: "t2", Identity: admin}, InvalidIdentity("")},
		{"create an enclave named like a namespace", Op{Kind: OpCreateEnclave, Enclave: "e.t1", Admin: admin, Identity: admin}, InvalidEnclaveName("e.t1")},
		{"policy name with a star", Op{Kind: OpWritePolicy, Enclave: "t1", Name: "p*", Identity: admin}, InvalidPolicyName("p*")},
		{"policy too large", Op{Kind: OpWritePolicy, Enclave: "t1", Name: "p", Allow: huge[:1], Deny: huge[1:], Identity: admin}, errPolicyTooLarge},
		{"delete a policy with an invalid name", Op{Kind: OpDeletePolicy, Enclave: "t1", Name: "", Identity: admin}, InvalidPolicyName("")},
		{"assign an invalid identity", Op{Kind: OpAssignPolicy, Enclave: "t1", Name: "p", Assignee: "x/y", Identity: admin}, InvalidIdentity("x/y")},
		{"assign the admin", Op{Kind: OpAssignPolicy, Enclave: "t1", Name: "p", Assignee: admin, Identity: admin}, errAssignAdmin},
		{"delete an invalid identity", Op{Kind: OpDeleteIdentity, Enclave: "t1", Assignee: "", Identity: admin}, InvalidIdentity("")},
		{"unknown op", Op{Kind: "format-keystore", Enclave: DefaultEnclave}, kes.NewError(400, "unknown operation 'format-keystore'")},
	}
	before := keystoreImage(t, st)
	applied := f.AppliedIndex()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Execute(ctx, tc.op)
			if err != nil {
				t.Fatalf("internal error %v, want %q", err, tc.want.Message)
			}
			if res.Err == nil || !errors.Is(*res.Err, tc.want) {
				t.Fatalf("result %+v, want %d %q", res.Err, tc.want.Code, tc.want.Message)
			}
			if got := keystoreImage(t, st); !reflect.DeepEqual(got, before) {
				t.Fatalf("the keystore changed: %d entries, had %d", len(got), len(before))
			}
			if got := f.AppliedIndex(); got != applied {
				t.Fatalf("something was proposed: applied index %d -> %d", applied, got)
			}
		})
	}
	if v, err := st.Get(ctx, SealName); err != nil || !bytes.Equal(v, seal) {
		t.Fatalf("seal entry after the attempts: %v", err)
	}
	// The node's own write path validates as well.
	if err := s.DeleteKey(ctx, DefaultEnclave, SealName, admin); !errors.Is(err, InvalidKeyName(SealName)) {
		t.Fatalf("local delete of the seal entry: %v", err)
	}
	if _, err := st.Get(ctx, SealName); err != nil {
		t.Fatalf("seal entry after a local delete: %v", err)
	}
	// The cluster still works.
	if _, _, err := s.GenerateKey(ctx, "t1", "k", nil); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteAcceptsTheLimits(t *testing.T) {
	// A policy exactly at the limit is accepted, one byte more is not.
	rule := strings.Repeat("r", maxPolicySize-3-(2*80+6))
	op := Op{Kind: OpWritePolicy, Enclave: DefaultEnclave, Name: "big", Allow: []string{rule, strings.Repeat("x", 80)}, Deny: []string{strings.Repeat("y", 80)}, Identity: admin}
	if err := validate(op); err != nil {
		t.Fatalf("policy at the limit: %v", err)
	}
	op.Deny[0] += "y"
	if err := validate(op); !errors.Is(err, errPolicyTooLarge) {
		t.Fatalf("policy over the limit: %v", err)
	}
	// Every valid op kind passes validation.
	for _, op := range []Op{
		{Kind: OpCreateKey, Enclave: "e", Name: "k"},
		{Kind: OpImportKey, Enclave: "e", Name: "k", Key: make([]byte, 32), Cipher: "ChaCha20"},
		{Kind: OpDeleteKey, Enclave: "e", Name: "k"},
		{Kind: OpLoadKey, Enclave: "e", Name: "k"},
		{Kind: OpCreateEnclave, Enclave: "e", Admin: admin},
		{Kind: OpDeleteEnclave, Enclave: "e"},
		{Kind: OpWritePolicy, Enclave: "e", Name: "p"},
		{Kind: OpDeletePolicy, Enclave: "e", Name: "p"},
		{Kind: OpAssignPolicy, Enclave: "e", Name: "p", Assignee: "id"},
		{Kind: OpDeleteIdentity, Enclave: "e", Assignee: "id"},
	} {
		if err := validate(op); err != nil {
			t.Errorf("%s: %v", op.Kind, err)
		}
	}
}

// TestStoreNameGuard: the one place that forms keystore names refuses
// everything that could address a reserved entry or another enclave.
func TestStoreNameGuard(t *testing.T) {
	for _, tc := range []struct{ enclave, name, want string }{
		{DefaultEnclave, "k", "k"},
		{"t1", "k", "keyraft.e.t1.k"},
	} {
		if got, err := storeName(tc.enclave, tc.name); err != nil || got != tc.want {
			t.Errorf("storeName(%q, %q) = %q, %v; want %q", tc.enclave, tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ enclave, name string }{
		{DefaultEnclave, SealName},
		{DefaultEnclave, "keyraft.e.t1.k"},
		{DefaultEnclave, ""},
		{"t1", "a.b"},
		{"t1.a", "b"},
		{"", "k"},
		{"t1", "../k"},
		{"e", "t1.k"},
	} {
		if got, err := storeName(tc.enclave, tc.name); !errors.Is(err, errStoreName) {
			t.Errorf("storeName(%q, %q) = %q, %v; want errStoreName", tc.enclave, tc.name, got, err)
		}
	}
	if got, err := enclaveNamespace("t1"); err != nil || got != "keyraft.e.t1." {
		t.Errorf("enclaveNamespace(t1) = %q, %v", got, err)
	}
	for _, e := range []string{DefaultEnclave, "", "a.b", "a*"} {
		if got, err := enclaveNamespace(e); !errors.Is(err, errStoreName) {
			t.Errorf("enclaveNamespace(%q) = %q, %v; want errStoreName", e, got, err)
		}
	}
	if !reserved(SealName) || reserved("k") {
		t.Error("reserved")
	}
}
