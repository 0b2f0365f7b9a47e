package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestAuthMode(t *testing.T) {
	for _, tc := range []struct {
		auth string
		skip bool
		want tls.ClientAuthType
	}{
		{"", false, tls.RequireAnyClientCert},
		{"off", false, tls.RequireAnyClientCert},
		{"on", false, tls.RequireAndVerifyClientCert},
		{"", true, tls.RequestClientCert},
		{"off", true, tls.RequestClientCert},
		{"on", true, tls.VerifyClientCertIfGiven},
	} {
		if got := (TLS{Auth: tc.auth}).AuthMode(tc.skip); got != tc.want {
			t.Errorf("AuthMode(auth=%q, skip=%v) = %v, want %v", tc.auth, tc.skip, got, tc.want)
		}
	}
	c := mustParse(t, minimal+"api:\n  /v1/ready: {skip_auth: false}\n  /v1/status: {skip_auth: true}\n")
	if got := c.ClientAuth(); got != tls.RequestClientCert {
		t.Errorf("ClientAuth with a skip_auth route = %v, want RequestClientCert", got)
	}
	if got := mustParse(t, minimal).ClientAuth(); got != tls.RequireAnyClientCert {
		t.Errorf("default ClientAuth = %v, want RequireAnyClientCert", got)
	}
}

// tlsConfig returns a parseable config whose TLS files are key and cert.
func tlsConfig(key, cert string) string {
	return "root: disabled\ntls:\n  key: " + key + "\n  cert: " + cert + "\nkeystore: {fs: {path: p}}\n"
}

func TestLoadChecksTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := genCert(t, dir, "server", certOpts{})
	cfgPath := filepath.Join(dir, "config.yaml")

	writeFile(t, cfgPath, tlsConfig(key, cert))
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.TLS.Key != key || c.TLS.Cert != cert {
		t.Fatalf("TLS = %+v", c.TLS)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	missing := filepath.Join(dir, "missing.cert")
	writeFile(t, cfgPath, tlsConfig(key, missing))
	_, err = Load(cfgPath)
	wantErr(t, err, "config: tls.cert: open "+missing+": no such file or directory")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("want errors.Is fs.ErrNotExist")
	}

	writeFile(t, cfgPath, tlsConfig(dir, cert)) // a directory is not a readable key file
	_, err = Load(cfgPath)
	wantErr(t, err, "config: tls.key: read "+dir+": is a directory")

	writeFile(t, cfgPath, tlsConfig(key, cert)+"tls:\n") // duplicate key → yaml error
	if _, err = Load(cfgPath); err == nil {
		t.Fatal("want error for duplicate tls key")
	}

	writeFile(t, cfgPath, "root: disabled\ntls: {key: "+key+", cert: "+cert+", ca: "+filepath.Join(dir, "nope")+"}\nkeystore: {fs: {path: p}}\n")
	_, err = Load(cfgPath)
	wantErr(t, err, "config: tls.ca: stat "+filepath.Join(dir, "nope")+": no such file or directory")

	_, err = Load(filepath.Join(dir, "no-config.yaml"))
	wantErr(t, err, "config: open "+filepath.Join(dir, "no-config.yaml")+": no such file or directory")

	c.TLS.Cert = missing
	if err := c.Validate(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Validate with missing cert = %v, want ErrNotExist", err)
	}
}

func TestLoadCertificate(t *testing.T) {
	dir := t.TempDir()

	cert, key, x := genCert(t, dir, "plain", certOpts{})
	got, err := TLS{Key: key, Cert: cert}.LoadCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if got.Leaf == nil || !got.Leaf.Equal(x) {
		t.Fatal("loaded certificate does not match the generated one")
	}

	encCert, encKey, _ := genCert(t, dir, "enc", certOpts{password: "correct horse"})
	if _, err := (TLS{Key: encKey, Cert: encCert, Password: "correct horse"}).LoadCertificate(); err != nil {
		t.Fatalf("encrypted key with password: %v", err)
	}
	if _, err := (TLS{Key: encKey, Cert: encCert}).LoadCertificate(); !errors.Is(err, ErrPasswordRequired) {
		t.Fatalf("encrypted key without password: got %v, want ErrPasswordRequired", err)
	}
	if _, err := (TLS{Key: encKey, Cert: encCert, Password: "wrong"}).LoadCertificate(); err == nil {
		t.Fatal("encrypted key with wrong password: want error")
	}
	// A password for an unencrypted key is ignored.
	if _, err := (TLS{Key: key, Cert: cert, Password: "unused"}).LoadCertificate(); err != nil {
		t.Fatalf("plain key with password: %v", err)
	}

	noSANCert, noSANKey, _ := genCert(t, dir, "nosan", certOpts{noSAN: true})
	if _, err := (TLS{Key: noSANKey, Cert: noSANCert}).LoadCertificate(); !errors.Is(err, ErrNoSAN) {
		t.Fatalf("cert without SAN: got %v, want ErrNoSAN", err)
	}

	if _, err := (TLS{Key: key, Cert: encCert}).LoadCertificate(); err == nil {
		t.Fatal("mismatched key and cert: want error")
	}
	_, err = TLS{Key: filepath.Join(dir, "none.key"), Cert: cert}.LoadCertificate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "tls.key" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key: got %v, want FieldError tls.key wrapping ErrNotExist", err)
	}
}

func TestLoadCAPool(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := os.Mkdir(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	certA, _, a := genCert(t, caDir, "a", certOpts{})
	_, _, b := genCert(t, caDir, "b", certOpts{}) // the .key files in caDir hold no certificates and are skipped
	writeFile(t, filepath.Join(caDir, "README"), "not a certificate\n")
	_, _, outside := genCert(t, dir, "outside", certOpts{})

	verifies := func(pool *x509.CertPool, c *x509.Certificate) bool {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}

	pool, err := TLS{CA: certA}.LoadCAPool()
	if err != nil {
		t.Fatal(err)
	}
	if !verifies(pool, a) || verifies(pool, b) {
		t.Fatal("file CA pool must trust exactly the file's certificate (besides system roots)")
	}

	pool, err = TLS{CA: caDir}.LoadCAPool()
	if err != nil {
		t.Fatal(err)
	}
	if !verifies(pool, a) || !verifies(pool, b) || verifies(pool, outside) {
		t.Fatal("directory CA pool must trust every certificate in the directory and nothing else")
	}

	pool, err = TLS{}.LoadCAPool()
	if err != nil || pool == nil || verifies(pool, a) {
		t.Fatalf("no CA: got pool=%v err=%v, want the system pool only", pool != nil, err)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = TLS{CA: empty}.LoadCAPool()
	wantErr(t, err, "config: tls.ca: no certificates found in "+empty)

	if _, err := (TLS{CA: filepath.Join(dir, "nope")}).LoadCAPool(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing CA: got %v, want ErrNotExist", err)
	}
}
