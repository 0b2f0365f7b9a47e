package kubernetes

import (
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// that cert-manager/certificates.yaml uses; strict decoding rejects any
// other field.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		IsCA        bool     `json:"isCA"`
		CommonName  string   `json:"commonName"`
		SecretName  string   `json:"secretName"`
		DNSNames    []string `json:"dnsNames"`
		IPAddresses []string `json:"ipAddresses"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		Usages      []string `json:"usages"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// issuer is the part of cert-manager's Issuer used here.
type issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca"`
	} `json:"spec"`
}

// TestCertManagerCertificates checks that every Secret the pods mount is
// issued, with the names peers, MinIO and the CLI dial, for server and
// client use, and keeping its key (the node's identity) on renewal.
func TestCertManagerCertificates(t *testing.T) {
	r := render(t)
	data, err := os.ReadFile("cert-manager/certificates.yaml")
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]*certificate{} // by secret name
	issuers := map[string]*issuer{}
	for i, doc := range documents(data) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		what := "certificates.yaml document " + string(rune('1'+i))
		switch tm.APIVersion + "/" + tm.Kind {
		case "cert-manager.io/v1/Certificate":
			c := new(certificate)
			decodeStrict(t, what, doc, c)
			certs[c.Spec.SecretName] = c
		case "cert-manager.io/v1/Issuer":
			is := new(issuer)
			decodeStrict(t, what, doc, is)
			issuers[is.Name] = is
		default:
			t.Fatalf("%s: unexpected %s/%s", what, tm.APIVersion, tm.Kind)
		}
	}
	for _, c := range certs {
		if issuers[c.Spec.IssuerRef.Name] == nil || c.Spec.IssuerRef.Kind != "Issuer" {
			t.Errorf("certificate %s: issuer %+v is not defined", c.Name, c.Spec.IssuerRef)
		}
	}

	var mounted []string
	for _, src := range r.volume(t, "tls").Projected.Sources {
		mounted = append(mounted, src.Secret.Name)
	}
	svc, ns := r.statefulSet.Spec.ServiceName, r.namespace
	for i := range r.replicas(t) {
		pod := r.podName(i)
		secret := pod + "-tls"
		if !slices.Contains(mounted, secret) {
			t.Errorf("the pods do not mount %s", secret)
		}
		c := certs[secret]
		if c == nil {
			t.Errorf("no Certificate issues %s", secret)
			continue
		}
		for _, name := range []string{pod + "." + svc, pod + "." + svc + "." + ns + ".svc", pod + "." + svc + "." + ns + ".svc.cluster.local", "localhost"} {
			if !slices.Contains(c.Spec.DNSNames, name) {
				t.Errorf("%s: no DNS name %s", secret, name)
			}
		}
		if !slices.Contains(c.Spec.Usages, "server auth") || !slices.Contains(c.Spec.Usages, "client auth") {
			t.Errorf("%s: usages %v: a node's certificate serves and joins", secret, c.Spec.Usages)
		}
		if c.Spec.PrivateKey.RotationPolicy != "Never" {
			t.Errorf("%s: rotationPolicy %q: a new key on renewal is a new identity", secret, c.Spec.PrivateKey.RotationPolicy)
		}
	}
}

// tenant is the part of the MinIO Operator's Tenant (minio.min.io/v2) that
// minio-tenant.yaml sets.
type tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Env                  []corev1.EnvVar `json:"env"`
		ExternalCaCertSecret []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"externalCaCertSecret"`
	} `json:"spec"`
}

// TestMinIOTenant checks that the Tenant names every pod by its stable DNS
// name, which its certificate holds, and authenticates with an API key.
func TestMinIOTenant(t *testing.T) {
	r := render(t)
	data, err := os.ReadFile("minio-tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := documents(data)
	if len(docs) != 1 {
		t.Fatalf("minio-tenant.yaml: %d documents", len(docs))
	}
	var tn tenant
	decodeStrict(t, "minio-tenant.yaml", docs[0], &tn)
	if tn.APIVersion != "minio.min.io/v2" || tn.Kind != "Tenant" {
		t.Fatalf("minio-tenant.yaml: %s/%s", tn.APIVersion, tn.Kind)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range tn.Spec.Env {
		env[e.Name] = e
	}
	var want []string
	for i := range r.replicas(t) {
		want = append(want, "https://"+r.podName(i)+"."+r.statefulSet.Spec.ServiceName+"."+r.namespace+".svc.cluster.local:7373")
	}
	if got := strings.Split(env["MINIO_KMS_KES_ENDPOINT"].Value, ","); !slices.Equal(got, want) {
		t.Errorf("MINIO_KMS_KES_ENDPOINT = %v, want every pod: %v", got, want)
	}
	if k := env["MINIO_KMS_KES_API_KEY"].ValueFrom; k == nil || k.SecretKeyRef == nil {
		t.Errorf("MINIO_KMS_KES_API_KEY must come from a Secret: %+v", env["MINIO_KMS_KES_API_KEY"])
	}
	if env["MINIO_KMS_KES_KEY_NAME"].Value == "" {
		t.Error("no MINIO_KMS_KES_KEY_NAME")
	}
	if len(tn.Spec.ExternalCaCertSecret) != 1 || tn.Spec.ExternalCaCertSecret[0].Name != "keyraft-ca" {
		t.Errorf("externalCaCertSecret %+v: MinIO must trust the CA that issued the node certificates", tn.Spec.ExternalCaCertSecret)
	}
}
