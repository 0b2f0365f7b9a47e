package config

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("KR_ADMIN", hexA)
	t.Setenv("KR_ID", hexB)
	t.Setenv("KR_DUR", "2m")
	t.Setenv("KR_BOOL", "true")
	t.Setenv("KR_EMPTY", "")
	t.Setenv("KR_PATH", "/data/keys")
	t.Setenv("KR_NULL", "null")
	t.Setenv("KR_KEY", "key-from-env")
	unsetenv(t, "KR_UNSET")

	c := mustParse(t, `
admin:
  identity: ${KR_ADMIN}
tls:
  key: "${KR_PATH}"
  cert: '${ KR_PATH }'
  password: ${KR_EMPTY}
  ca: "  ${KR_PATH}  "
api:
  /v1/ready:
    skip_auth: ${KR_BOOL}
    timeout: ${KR_DUR}
policy:
  p:
    allow: ["${KR_UNSET}", "/v1/key/${KR_ID}"]
    deny: ["${KR_PATH}"]
    identities:
      - ${KR_ID}
      - ${KR_EMPTY}
cache:
  expiry:
    any: ${KR_DUR}
    unused: ${KR_EMPTY}
keys:
  - name: ${KR_KEY}
keystore:
  fs:
    path: a${KR_PATH}
cluster:
  node_id: ${KR_NULL}
  data_dir: ${KR_PATH}x
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"unquoted", c.Admin, hexA},
		{"double-quoted", c.TLS.Key, "/data/keys"},
		{"spaces inside braces", c.TLS.Cert, "/data/keys"},
		{"empty variable", c.TLS.Password, ""},
		{"spaces around reference", c.TLS.CA, "/data/keys"},
		{"bool from env", c.API["/v1/ready"].SkipAuth, true},
		{"duration from env", c.API["/v1/ready"].Timeout, 2 * time.Minute},
		{"allow not substituted", c.Policies["p"].Allow, []string{"${KR_UNSET}", "/v1/key/${KR_ID}"}},
		{"deny not substituted", c.Policies["p"].Deny, []string{"${KR_PATH}"}},
		{"identity substituted, empty dropped", c.Policies["p"].Identities, []string{hexB}},
		{"cache duration from env", c.Cache.Any, 2 * time.Minute},
		{"empty duration keeps default", c.Cache.Unused, DefaultCacheUnused},
		{"key name", c.Keys, []string{"key-from-env"}},
		{"partial reference not substituted", c.Keystore.FS.Path, "a${KR_PATH}"},
		{"literal null from env is a string", c.Cluster.NodeID, "null"},
		{"suffix not substituted", c.Cluster.DataDir, "${KR_PATH}x"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEnvMissing(t *testing.T) {
	unsetenv(t, "KR_MISSING")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"top level", "address: ${KR_MISSING}\n", "config: referenced env. variable 'KR_MISSING' in line '1' not found"},
		{"quoted, trimmed name", "root: disabled\n\ntls:\n  key: \"${ KR_MISSING }\"\n",
			"config: referenced env. variable 'KR_MISSING' in line '4' not found"},
		{"identity list", "root: disabled\npolicy:\n  p:\n    identities:\n      - x\n      - ${KR_MISSING}\n",
			"config: referenced env. variable 'KR_MISSING' in line '6' not found"},
		{"aws credential", "keystore:\n  secretsmanager:\n    credentials:\n      secretkey: \"${KR_MISSING}\"\n",
			"config: referenced env. variable 'KR_MISSING' in line '4' not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			wantErr(t, err, tc.want)
			var ee *EnvError
			if !errors.As(err, &ee) || ee.Name != "KR_MISSING" {
				t.Fatalf("want *EnvError for KR_MISSING, got %#v", err)
			}
		})
	}
}

func TestEnvBadValues(t *testing.T) {
	t.Setenv("KR_BAD_DUR", "soon")
	t.Setenv("KR_NEG_DUR", "-5s")
	t.Setenv("KR_BAD_ID", "not an identity")
	const base = "root: disabled\ntls: {key: k, cert: c}\nkeystore: {fs: {path: p}}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad duration", base + "cache: {expiry: {offline: \"${KR_BAD_DUR}\"}}\n", `config: cache.expiry.offline: invalid duration "soon"`},
		{"negative duration", base + "cache: {expiry: {offline: \"${KR_NEG_DUR}\"}}\n", "config: cache.expiry.offline: negative duration -5s"},
		{"identity validated after substitution", base + "policy: {p: {identities: [\"${KR_BAD_ID}\"]}}\n",
			`config: policy.p.identities: invalid identity "not an identity"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			wantErr(t, err, tc.want)
		})
	}
}
