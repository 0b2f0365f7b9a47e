package main

import (
	"errors"
	"reflect"
	"testing"
)

func TestEndpointsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		flag string
		want []string
	}{
		{name: "default", want: []string{defaultServer}},
		{name: "KES_SERVER", env: map[string]string{"KES_SERVER": "https://a:7373"}, want: []string{"https://a:7373"}},
		{name: "MINIO_KES_SERVER wins", env: map[string]string{"MINIO_KES_SERVER": "m:1", "KES_SERVER": "k:1", "MINIO_KMS_KES_ENDPOINT": "e:1"}, want: []string{"m:1"}},
		{name: "KES_SERVER before MinIO's", env: map[string]string{"KES_SERVER": "k:1", "MINIO_KMS_KES_ENDPOINT": "e:1"}, want: []string{"k:1"}},
		{name: "MINIO_KMS_KES_ENDPOINT list", env: map[string]string{"MINIO_KMS_KES_ENDPOINT": "https://a:1, b:2,,"}, want: []string{"https://a:1", "b:2"}},
		{name: "flag wins", env: map[string]string{"KES_SERVER": "k:1"}, flag: "f:1,g:2", want: []string{"f:1", "g:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearClientEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := &clientFlags{servers: tc.flag}
			if got := f.endpoints(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("endpoints = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEndpointSchemes(t *testing.T) {
	clearClientEnv(t)
	t.Setenv("KES_SERVER", "http://a:1,https://b:2,c:3")
	t.Setenv("KES_API_KEY", "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs")
	c, err := (&clientFlags{}).client()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Endpoints(), []string{"https://a:1", "https://b:2", "https://c:3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %q, want %q", got, want)
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	const apiKey = "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		flags   clientFlags
		want    credential
		wantErr error
	}{
		{name: "nothing", wantErr: errNoCredentials},
		{name: "KES_API_KEY", env: map[string]string{"KES_API_KEY": apiKey},
			want: credential{apiKey: apiKey, apiKeySrc: "KES_API_KEY"}},
		{name: "MINIO_KES_API_KEY wins", env: map[string]string{"MINIO_KES_API_KEY": "m", "KES_API_KEY": "k", "MINIO_KMS_KES_API_KEY": "x"},
			want: credential{apiKey: "m", apiKeySrc: "MINIO_KES_API_KEY"}},
		{name: "MINIO_KMS_KES_API_KEY", env: map[string]string{"MINIO_KMS_KES_API_KEY": "x"},
			want: credential{apiKey: "x", apiKeySrc: "MINIO_KMS_KES_API_KEY"}},
		{name: "KES client cert", env: map[string]string{"KES_CLIENT_KEY": "k.pem", "KES_CLIENT_CERT": "c.pem"},
			want: credential{certFile: "c.pem", certSrc: "KES_CLIENT_CERT", keyFile: "k.pem", keyFileSrc: "KES_CLIENT_KEY"}},
		{name: "cert precedence", env: map[string]string{
			"MINIO_KES_KEY_FILE": "1.key", "KES_CLIENT_KEY": "2.key", "MINIO_KES_CLIENT_KEY": "3.key", "MINIO_KMS_KES_KEY_FILE": "4.key",
			"MINIO_KES_CERT_FILE": "1.crt", "KES_CLIENT_CERT": "2.crt", "MINIO_KES_CLIENT_CERT": "3.crt", "MINIO_KMS_KES_CERT_FILE": "4.crt"},
			want: credential{certFile: "1.crt", certSrc: "MINIO_KES_CERT_FILE", keyFile: "1.key", keyFileSrc: "MINIO_KES_KEY_FILE"}},
		{name: "MinIO KMS cert", env: map[string]string{"MINIO_KMS_KES_KEY_FILE": "4.key", "MINIO_KMS_KES_CERT_FILE": "4.crt"},
			want: credential{certFile: "4.crt", certSrc: "MINIO_KMS_KES_CERT_FILE", keyFile: "4.key", keyFileSrc: "MINIO_KMS_KES_KEY_FILE"}},
		{name: "env conflict", env: map[string]string{"KES_API_KEY": apiKey, "KES_CLIENT_CERT": "c.pem", "KES_CLIENT_KEY": "k.pem"},
			wantErr: errCredentialConflict},
		{name: "flag conflict", flags: clientFlags{apiKey: apiKey, certFile: "c.pem", keyFile: "k.pem"}, wantErr: errCredentialConflict},
		{name: "flag API key beats env cert", env: map[string]string{"KES_CLIENT_CERT": "c.pem", "KES_CLIENT_KEY": "k.pem"},
			flags: clientFlags{apiKey: apiKey}, want: credential{apiKey: apiKey, apiKeySrc: "--api-key"}},
		{name: "flag cert beats env API key", env: map[string]string{"KES_API_KEY": apiKey},
			flags: clientFlags{certFile: "c.pem", keyFile: "k.pem"},
			want:  credential{certFile: "c.pem", certSrc: "--cert", keyFile: "k.pem", keyFileSrc: "--key"}},
		{name: "flag cert, env key", env: map[string]string{"KES_CLIENT_KEY": "k.pem"}, flags: clientFlags{certFile: "c.pem"},
			want: credential{certFile: "c.pem", certSrc: "--cert", keyFile: "k.pem", keyFileSrc: "KES_CLIENT_KEY"}},
		{name: "cert without key", env: map[string]string{"KES_CLIENT_CERT": "c.pem"}, wantErr: errNoCredentials},
		{name: "key without cert", flags: clientFlags{keyFile: "k.pem"}, wantErr: errNoCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearClientEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := tc.flags
			got, err := f.credentials()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("credentials = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClientCommandsAgainstServer(t *testing.T) {
	clearClientEnv(t)
	s := startCLIServer(t, nil)

	// API key and endpoint from MinIO's variables, server verified by MINIO_KMS_KES_CAPATH.
	t.Setenv("MINIO_KMS_KES_ENDPOINT", "http://"+s.addr)
	t.Setenv("MINIO_KMS_KES_API_KEY", s.adminKey.String())
	t.Setenv("MINIO_KMS_KES_CAPATH", s.certFile)
	mustRun(t, "key", "create", "env-key")
	var names []string
	mustJSON(t, &names, "ls")
	if !reflect.DeepEqual(names, []string{"env-key"}) {
		t.Errorf("ls = %q", names)
	}

	// Conflicting credentials are refused before any request.
	t.Setenv("KES_CLIENT_CERT", s.certFile)
	t.Setenv("KES_CLIENT_KEY", s.certFile)
	r := wantErr(t, "mutually exclusive", "key", "ls")
	if !errors.Is(r.err, errCredentialConflict) {
		t.Errorf("error %v does not wrap errCredentialConflict", r.err)
	}
	wantErr(t, "mutually exclusive", "key", "ls", "-a", s.adminKey.String(), "--cert", "c", "--key", "k")
	t.Setenv("KES_CLIENT_CERT", "")
	t.Setenv("KES_CLIENT_KEY", "")

	// The enclave reaches the server from the flag and from the environment.
	wantErr(t, "enclave does not exist", "key", "ls", "-e", "no-such-enclave")
	t.Setenv("KES_ENCLAVE", "no-such-enclave")
	wantErr(t, "enclave does not exist", "key", "ls")
	t.Setenv("KES_ENCLAVE", "")

	// -s works as --server shorthand on the key commands.
	names = nil
	mustJSON(t, &names, "key", "ls", "-s", s.addr)
	if !reflect.DeepEqual(names, []string{"env-key"}) {
		t.Errorf("key ls -s = %q", names)
	}

	t.Setenv("MINIO_KMS_KES_CAPATH", "")
	wantErr(t, "certificate", "key", "ls")
	wantErr(t, "invalid API key", "key", "ls", "-k", "-a", "kes:v1:nope")
}
