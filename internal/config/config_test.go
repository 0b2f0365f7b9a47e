package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestParseDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Address:  "0.0.0.0:7373",
		Admin:    "disabled",
		TLS:      TLS{Key: "server.key", Cert: "server.cert"},
		Cache:    Cache{Any: 5 * time.Minute, Unused: 30 * time.Second, Offline: 0},
		Log:      Log{Error: LogLevel{level: hclog.Info}, Audit: LogLevel{level: hclog.Info}},
		Keystore: Keystore{FS: &FS{Path: "/tmp/keys"}},
		Cluster: Cluster{
			NodeID:       host,
			DataDir:      "./keyraft-data",
			RaftAddress:  "0.0.0.0:7374",
			Advertise:    "127.0.0.1:7374",
			APIAdvertise: "https://127.0.0.1:7373",

			IsolationTimeout: DefaultIsolationTimeout,
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if c.AdminEnabled() {
		t.Fatal("admin 'disabled' must not be enabled")
	}
}

func TestParseFull(t *testing.T) {
	c := mustParse(t, `
version: v1
address: 10.0.0.5:7000
admin:
  identity: `+hexA+`
tls:
  key: k
  cert: c
  password: secret
  auth: "ON"
  ca: /etc/ca
  proxy:
    identities: [proxy-1]
    header:
      cert: X-Tls-Client-Cert
api:
  /v1/ready:
    skip_auth: true
    timeout: 15s
  /v1/key/create/:
    timeout: 1m
policy:
  minio:
    allow: ["/v1/key/create/*"]
    deny: ["/v1/key/delete/*"]
    identities: [`+hexB+`]
cache:
  expiry:
    any: 1m
    unused: 20s
    offline: 1h
log:
  error: "off"
  audit: debug
keys:
  - name: k1
  - name: k2
keystore:
  fs:
    path: ./keys
cluster:
  node_id: node-1
  data_dir: /var/lib/keyraft
  raft_address: 0.0.0.0:9000
  advertise: node1.example:9000
  api_advertise: node1.example:7000
  join: [https://node2.example:7000, "node3.example:7000"]
  bootstrap: true
unknown_top_level_key: ignored
`)
	want := &Config{
		Address: "10.0.0.5:7000",
		Admin:   hexA,
		TLS: TLS{Key: "k", Cert: "c", Password: "secret", Auth: "on", CA: "/etc/ca",
			Proxy: Proxy{Identities: []string{"proxy-1"}, Header: "X-Tls-Client-Cert"}},
		API: map[string]API{
			"/v1/ready":       {Timeout: 15 * time.Second, SkipAuth: true},
			"/v1/key/create/": {Timeout: time.Minute},
		},
		Policies: map[string]Policy{"minio": {
			Allow: []string{"/v1/key/create/*"}, Deny: []string{"/v1/key/delete/*"}, Identities: []string{hexB},
		}},
		Cache:    Cache{Any: time.Minute, Unused: 20 * time.Second, Offline: time.Hour},
		Log:      Log{Error: LogLevel{level: hclog.Off, off: true}, Audit: LogLevel{level: hclog.Debug}},
		Keys:     []string{"k1", "k2"},
		Keystore: Keystore{FS: &FS{Path: "./keys"}},
		Cluster: Cluster{
			NodeID: "node-1", DataDir: "/var/lib/keyraft", RaftAddress: "0.0.0.0:9000",
			Advertise: "node1.example:9000", APIAdvertise: "https://node1.example:7000",
			Join:      []string{"https://node2.example:7000", "https://node3.example:7000"},
			Bootstrap: true,

			IsolationTimeout: DefaultIsolationTimeout,
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if !c.AdminEnabled() {
		t.Fatal("64-hex admin identity must be enabled")
	}
	if got := c.ClientAuth(); got.String() != "VerifyClientCertIfGiven" {
		t.Fatalf("ClientAuth = %v, want VerifyClientCertIfGiven", got)
	}
}

func TestClusterDerivedDefaults(t *testing.T) {
	for _, tc := range []struct {
		address, raft, advertise, api string
	}{
		{"0.0.0.0:7373", "0.0.0.0:7374", "127.0.0.1:7374", "https://127.0.0.1:7373"},
		{":7373", ":7374", "127.0.0.1:7374", "https://127.0.0.1:7373"},
		{"[::]:7373", "[::]:7374", "127.0.0.1:7374", "https://127.0.0.1:7373"},
		{"10.1.2.3:8000", "10.1.2.3:7374", "10.1.2.3:7374", "https://10.1.2.3:8000"},
		{"kms.local:7373", "kms.local:7374", "kms.local:7374", "https://kms.local:7373"},
	} {
		t.Run(tc.address, func(t *testing.T) {
			c := mustParse(t, minimal+"address: \""+tc.address+"\"\n")
			got := [3]string{c.Cluster.RaftAddress, c.Cluster.Advertise, c.Cluster.APIAdvertise}
			if want := [3]string{tc.raft, tc.advertise, tc.api}; got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	c := mustParse(t, minimal+"cluster:\n  raft_address: 0.0.0.0:9999\n")
	if c.Cluster.Advertise != "127.0.0.1:9999" {
		t.Fatalf("advertise = %q, want derived from raft_address", c.Cluster.Advertise)
	}
}

func TestRootAndAdminIdentity(t *testing.T) {
	const rest = "tls: {key: k, cert: c}\nkeystore: {fs: {path: p}}\n"
	for _, tc := range []struct {
		name, yaml, admin string
		enabled           bool
		err               string
	}{
		{name: "admin.identity", yaml: "admin: {identity: " + hexA + "}\n", admin: hexA, enabled: true},
		{name: "legacy root", yaml: "root: " + hexA + "\n", admin: hexA, enabled: true},
		{name: "root disabled", yaml: "root: disabled\n", admin: "disabled"},
		{name: "upper-case hex cannot match", yaml: "root: " + strings.ToUpper(hexA) + "\n", admin: strings.ToUpper(hexA)},
		{name: "both", yaml: "root: disabled\nadmin: {identity: disabled}\n",
			err: "config: root: cannot be combined with admin.identity"},
		{name: "neither", yaml: "", err: "config: invalid admin identity: no admin identity"},
		{name: "empty", yaml: "admin: {identity: \"\"}\n", err: "config: invalid admin identity: no admin identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml + rest))
			if tc.err != "" {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Admin != tc.admin || c.AdminEnabled() != tc.enabled {
				t.Fatalf("admin = %q enabled=%v, want %q enabled=%v", c.Admin, c.AdminEnabled(), tc.admin, tc.enabled)
			}
		})
	}
}

func TestKeystoreSpellings(t *testing.T) {
	const head = "root: disabled\ntls: {key: k, cert: c}\n"
	want := &AWS{Endpoint: "secretsmanager.us-east-1.amazonaws.com", Region: "us-east-1", KMSKey: "alias/k",
		Prefix: "keyraft/", Credentials: AWSCredentials{AccessKey: "AK", SecretKey: "SK", Token: "TK"}}
	body := `
      endpoint: secretsmanager.us-east-1.amazonaws.com
      region: us-east-1
      kmskey: alias/k
      prefix: keyraft/
      credentials: {accesskey: AK, secretkey: SK, token: TK}
`
	for name, yaml := range map[string]string{
		"aws.secretsmanager": "keystore:\n  aws:\n    secretsmanager:" + body,
		"secretsmanager":     "keystore:\n  secretsmanager:" + strings.ReplaceAll(body, "      ", "    "),
	} {
		t.Run(name, func(t *testing.T) {
			c := mustParse(t, head+yaml)
			if c.Keystore.FS != nil || !reflect.DeepEqual(c.Keystore.AWS, want) {
				t.Fatalf("got %+v, want AWS %+v", c.Keystore, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const head = "admin: {identity: disabled}\ntls: {key: k, cert: c}\n"
	const fs = "keystore: {fs: {path: p}}\n"
	cases := []struct {
		name, yaml, err string
		is              error
	}{
		{"version", "version: v2\n" + head + fs, `config: version: invalid config version "v2"`, nil},
		{"no admin", "tls: {key: k, cert: c}\n" + fs, "config: invalid admin identity: no admin identity", ErrNoAdmin},
		{"no tls key", "admin: {identity: x}\ntls: {cert: c}\n" + fs, "config: tls.key: no private key specified", nil},
		{"no tls cert", "admin: {identity: x}\ntls: {key: k}\n" + fs, "config: tls.cert: no certificate specified", nil},
		{"tls auth", "admin: {identity: x}\ntls: {key: k, cert: c, auth: maybe}\n" + fs,
			`config: tls.auth: invalid auth mode "maybe": must be on or off`, nil},
		{"proxy is admin", "admin: {identity: x}\ntls: {key: k, cert: c, proxy: {identities: [x]}}\n" + fs,
			`config: tls.proxy.identities: identity "x" is the admin identity`, nil},
		{"address", head + fs + "address: nope\n",
			`config: address: invalid host:port "nope": address nope: missing port in address`, nil},
		{"api negative timeout", head + fs + "api: {/v1/ready: {timeout: -1s}}\n",
			"config: api./v1/ready.timeout: negative timeout -1s", nil},
		{"api bad timeout", head + fs + "api: {/v1/ready: {timeout: abc}}\n",
			`config: api./v1/ready.timeout: invalid duration "abc"`, nil},
		{"api bad skip_auth", head + fs + "api: {/v1/ready: {skip_auth: maybe}}\n",
			`config: api./v1/ready.skip_auth: invalid boolean "maybe"`, nil},
		{"policy name", head + fs + "policy: {my.policy: {identities: [a]}}\n",
			`config: policy.my.policy: invalid policy name "my.policy"`, nil},
		{"policy name underscore", head + fs + "policy: {_: {}}\n", `config: policy._: invalid policy name "_"`, nil},
		{"identity name", head + fs + "policy: {p: {identities: [not/valid]}}\n",
			`config: policy.p.identities: invalid identity "not/valid"`, nil},
		{"identity leading dash", head + fs + "policy: {p: {identities: [-abc]}}\n",
			`config: policy.p.identities: invalid identity "-abc"`, nil},
		{"identity too long", head + fs + "policy: {p: {identities: [" + strings.Repeat("a", 81) + "]}}\n",
			`config: policy.p.identities: invalid identity "` + strings.Repeat("a", 81) + `"`, nil},
		{"identity in two policies", head + fs + "policy:\n  b: {identities: [" + hexA + "]}\n  a: {identities: [" + hexA + "]}\n",
			`config: policy.b.identities: identity "` + hexA + `" is already assigned to policy "a"; cannot assign it to policy "b" too`, nil},
		{"admin in policy", "admin: {identity: " + hexA + "}\ntls: {key: k, cert: c}\n" + fs + "policy: {p: {identities: [" + hexA + "]}}\n",
			`config: policy.p.identities: identity "` + hexA + `" is the admin identity`, nil},
		{"proxy in policy", "admin: {identity: disabled}\ntls: {key: k, cert: c, proxy: {identities: [pr]}}\n" + fs + "policy: {p: {identities: [pr]}}\n",
			`config: policy.p.identities: identity "pr" is a TLS proxy`, nil},
		{"cache any", head + fs + "cache: {expiry: {any: 5x}}\n", `config: cache.expiry.any: invalid duration "5x"`, nil},
		{"cache unused negative", head + fs + "cache: {expiry: {unused: -1s}}\n", "config: cache.expiry.unused: negative duration -1s", nil},
		{"cache offline negative", head + fs + "cache: {expiry: {offline: -2m}}\n", "config: cache.expiry.offline: negative duration -2m0s", nil},
		{"log level", head + fs + "log: {error: LOUD}\n", `config: log.error: invalid log level "LOUD"`, nil},
		{"audit level", head + fs + "log: {audit: INFO-1}\n", `config: log.audit: invalid log level "INFO-1"`, nil},
		{"key name", head + fs + "keys: [{name: a/b}]\n", `config: keys: invalid key name "a/b"`, nil},
		{"key name missing", head + fs + "keys: [{}]\n", `config: keys: invalid key name ""`, nil},
		{"key duplicate", head + fs + "keys: [{name: k}, {name: j}, {name: k}]\n", `config: keys: key "k" is defined multiple times`, nil},
		{"no keystore", head, "config: no keystore specified", ErrNoKeystore},
		{"empty keystore", head + "keystore: {}\n", "config: no keystore specified", ErrNoKeystore},
		{"unknown keystore only", head + "keystore: {memory: {}}\n", "config: no keystore specified", ErrNoKeystore},
		{"two keystores", head + "keystore:\n  fs: {path: p}\n  aws: {secretsmanager: {endpoint: e, region: r}}\n",
			"config: keystore: more than one keystore specified (fs, aws)", nil},
		{"both aws spellings", head + "keystore:\n  aws: {secretsmanager: {endpoint: e, region: r}}\n  secretsmanager: {endpoint: e, region: r}\n",
			"config: keystore: more than one keystore specified (aws, secretsmanager)", nil},
		{"aws no endpoint", head + "keystore: {aws: {secretsmanager: {region: r}}}\n",
			"config: keystore.aws.secretsmanager.endpoint: no endpoint specified", nil},
		{"aws no region", head + "keystore: {secretsmanager: {endpoint: e}}\n",
			"config: keystore.secretsmanager.region: no region specified", nil},
		{"aws without secretsmanager", head + "keystore: {aws: {}}\n", "config: keystore.aws: no secretsmanager section specified", nil},
		{"fs no path", head + "keystore: {fs: {}}\n", "config: keystore.fs.path: no path specified", nil},
		{"raft address", head + fs + "cluster: {raft_address: localhost}\n",
			`config: cluster.raft_address: invalid host:port "localhost": address localhost: missing port in address`, nil},
		{"advertise port", head + fs + "cluster: {advertise: \"h:99999\"}\n",
			`config: cluster.advertise: invalid port in "h:99999": strconv.ParseUint: parsing "99999": value out of range`, nil},
		{"join scheme", head + fs + "cluster: {join: [\"http://h:7373\"]}\n",
			`config: cluster.join[0]: invalid endpoint "http://h:7373": scheme must be https`, nil},
		{"api_advertise no port", head + fs + "cluster: {api_advertise: \"https://h\"}\n",
			`config: cluster.api_advertise: invalid endpoint "https://h": invalid host:port "h": address h: missing port in address`, nil},
		{"bootstrap", head + fs + "cluster: {bootstrap: sometimes}\n", `config: cluster.bootstrap: invalid boolean "sometimes"`, nil},
		{"scalar expected", head + fs + "address: [a, b]\n", "config: address: expected a single value, not a list or mapping", nil},
		{"duplicate policy", head + fs + "policy: {a: {}, a: {}}\n", "config: policy.a: defined multiple times", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			wantErr(t, err, tc.err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

func TestUnsupportedKeystores(t *testing.T) {
	for _, name := range []string{"vault", "fortanix", "gemalto", "gcp", "azure", "entrust", "kes"} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte("root: disabled\ntls: {key: k, cert: c}\nkeystore:\n  " + name + ":\n    endpoint: https://x\n"))
			wantErr(t, err, fmt.Sprintf("config: keystore.%s: not supported by keyraft", name))
			if !errors.Is(err, ErrNotSupported) {
				t.Fatal("want errors.Is ErrNotSupported")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != "keystore."+name || fe.Line != 4 {
				t.Fatalf("want *FieldError at keystore.%s line 4, got %#v", name, fe)
			}
		})
	}
}

func TestYAMLErrorsWrapped(t *testing.T) {
	for name, data := range map[string]string{
		"syntax":        "tls: [unclosed\n",
		"type mismatch": "tls: just-a-string\n",
		"duplicate key": "address: a:1\naddress: b:2\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(data))
			if err == nil || !strings.HasPrefix(err.Error(), "config: yaml: ") {
				t.Fatalf("want a wrapped yaml error, got %v", err)
			}
		})
	}
}

func TestValidateProgrammaticConfig(t *testing.T) {
	c := mustParse(t, minimal)
	c.Keystore = Keystore{}
	wantErr(t, c.Validate(), "config: no keystore specified")

	c = mustParse(t, minimal)
	c.Keystore = Keystore{FS: &FS{Path: "x"}, AWS: &AWS{Endpoint: "e", Region: "r"}}
	wantErr(t, c.Validate(), "config: keystore: more than one keystore specified (fs, aws)")

	c = mustParse(t, minimal)
	c.Cluster.NodeID = ""
	wantErr(t, c.Validate(), "config: cluster.node_id: no node ID specified")

	c = mustParse(t, minimal)
	c.Cache.Any = -time.Second
	wantErr(t, c.Validate(), "config: cache.expiry.any: negative duration -1s")
}

func TestAWSCredentialsRedacted(t *testing.T) {
	c := mustParse(t, "root: disabled\ntls: {key: k, cert: c}\nkeystore: {secretsmanager: {endpoint: e, region: r, credentials: {accesskey: AKIDSECRETVALUE, secretkey: VERYSECRETKEY}}}\n")
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, *c.Keystore.AWS) + fmt.Sprintf(format, c.Keystore.AWS.Credentials)
		if strings.Contains(out, "SECRET") {
			t.Fatalf("%s leaks credentials: %s", format, out)
		}
	}
	if c.Keystore.AWS.Credentials.SecretKey != "VERYSECRETKEY" {
		t.Fatal("credentials must still be readable from the struct")
	}
}
