package kubernetes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/keyraft/keyraft/internal/config"
)

func TestManifestsDecodeStrictly(t *testing.T) {
	r := render(t)
	if r.namespaceObj.Name != r.namespace {
		t.Errorf("Namespace object %q, kustomization namespace %q", r.namespaceObj.Name, r.namespace)
	}
	if len(r.services) != 2 || len(r.configMaps) != 1 {
		t.Errorf("services %d, config maps %d", len(r.services), len(r.configMaps))
	}
	if sa := r.statefulSet.Spec.Template.Spec.ServiceAccountName; sa != r.serviceAccount.Name {
		t.Errorf("pods run as %q, the ServiceAccount is %q", sa, r.serviceAccount.Name)
	}
}

func TestStatefulSetTopology(t *testing.T) {
	r := render(t)
	sts := r.statefulSet
	if n := r.replicas(t); n != 3 {
		t.Errorf("replicas = %d, want 3", n)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: after a full restart no pod is ready without a quorum, so pods must start in parallel", sts.Spec.PodManagementPolicy)
	}
	podLabels := sts.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(sts.Spec.Selector.MatchLabels) {
		t.Errorf("StatefulSet selector %v does not match the pod labels %v", sts.Spec.Selector.MatchLabels, podLabels)
	}

	headless := r.services[sts.Spec.ServiceName]
	if headless == nil {
		t.Fatalf("serviceName %q names no Service", sts.Spec.ServiceName)
	}
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses || !matches(headless.Spec.Selector) {
		t.Errorf("headless Service: clusterIP %q, publishNotReadyAddresses %v, selector %v",
			headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses, headless.Spec.Selector)
	}
	for _, s := range r.services {
		if !matches(s.Spec.Selector) {
			t.Errorf("Service %s selects %v, not the pods", s.Name, s.Spec.Selector)
		}
	}

	// The PDB keeps a Raft quorum.
	quorum := r.replicas(t)/2 + 1
	if r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != quorum || !matches(r.pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget: minAvailable %v (want %d), selector %v", r.pdb.Spec.MinAvailable, quorum, r.pdb.Spec.Selector)
	}

	c := r.container(t)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["api"] != 7373 || ports["raft"] != 7374 {
		t.Errorf("container ports %v", ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: %+v", name, p)
			continue
		}
		if p.HTTPGet.Path != "/v1/ready" || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Port != intstr.FromString("api") {
			t.Errorf("%s probe: %+v", name, p.HTTPGet)
		}
	}
	caps := c.SecurityContext.Capabilities
	if caps == nil || !slices.Contains(caps.Add, "IPC_LOCK") {
		t.Errorf("the container cannot lock its memory: capabilities %+v", caps)
	}
}

// podFiles are a pod's view of its volumes, written below root.
type podFiles struct {
	root string
	// mounts maps a mount path to the volume.
	mounts map[string]string
}

// ids are the identities the keyraft-identities ConfigMap holds.
var ids = map[string]string{
	"ADMIN_IDENTITY": strings.Repeat("a1", 32),
	"MINIO_IDENTITY": strings.Repeat("b2", 32),
}

// newNodeCert returns a PEM certificate and key for a node, signed by itself.
func newNodeCert(t *testing.T, dns []string) (certPEM, keyPEM []byte, identity string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dns[0]},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dns, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256Sum(cert.RawSubjectPublicKeyInfo)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), hex.EncodeToString(sum)
}

// materialize writes the pod's volumes below a temporary root: the config
// map items, the projected Secrets (certificates made here, named after
// their Secret) and an empty directory for each claim.
func (r *rendered) materialize(t *testing.T, secrets map[string]map[string][]byte) podFiles {
	t.Helper()
	pf := podFiles{root: t.TempDir(), mounts: map[string]string{}}
	for _, m := range r.container(t).VolumeMounts {
		pf.mounts[m.MountPath] = m.Name
		dir := filepath.Join(pf.root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		v := r.volume(t, m.Name)
		write := func(path string, data []byte) {
			p := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case v.ConfigMap != nil:
			cm := r.configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %s: no config map %q", v.Name, v.ConfigMap.Name)
			}
			for _, it := range v.ConfigMap.Items {
				data, ok := cm.Data[it.Key]
				if !ok {
					t.Fatalf("volume %s: config map %s has no key %q", v.Name, cm.Name, it.Key)
				}
				write(it.Path, []byte(data))
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					t.Fatalf("volume %s: unexpected source %+v", v.Name, src)
				}
				data, ok := secrets[src.Secret.Name]
				if !ok {
					t.Fatalf("volume %s: no Secret %q", v.Name, src.Secret.Name)
				}
				for _, it := range src.Secret.Items {
					b, ok := data[it.Key]
					if !ok {
						t.Fatalf("volume %s: Secret %s has no key %q", v.Name, src.Secret.Name, it.Key)
					}
					write(it.Path, b)
				}
			}
		}
	}
	return pf
}

// path maps an absolute path in the pod to the materialized file; it fails
// if no volume is mounted there.
func (pf podFiles) path(t *testing.T, p string) string {
	t.Helper()
	for mp := range pf.mounts {
		if strings.HasPrefix(p, mp+"/") {
			return filepath.Join(pf.root, p)
		}
	}
	t.Fatalf("%s is on no volume mount (%v)", p, pf.mounts)
	return ""
}

// nodeSecrets makes the cert-manager Secrets keyraft-N-tls (tls.crt,
// tls.key, ca.crt) and records each node's identity in ids.
func nodeSecrets(t *testing.T, r *rendered) map[string]map[string][]byte {
	t.Helper()
	secrets := map[string]map[string][]byte{}
	var bundle []byte
	for i := range r.replicas(t) {
		pod := r.podName(i)
		cert, key, id := newNodeCert(t, []string{pod + "." + r.statefulSet.Spec.ServiceName, pod})
		secrets[pod+"-tls"] = map[string][]byte{"tls.crt": cert, "tls.key": key}
		bundle = append(bundle, cert...)
		ids[fmt.Sprintf("KEYRAFT_%d_IDENTITY", i)] = id
	}
	for _, s := range secrets {
		s["ca.crt"] = bundle
	}
	return secrets
}

// TestPodsLoadTheirConfig starts every pod as far as the config goes: it
// resolves the pod's environment and arguments as the kubelet does, lays
// out its volumes and loads the config with the server's own loader, then
// checks the node's identity, names and join flow.
func TestPodsLoadTheirConfig(t *testing.T) {
	r := render(t)
	secrets := nodeSecrets(t, r)
	svc := r.statefulSet.Spec.ServiceName
	n := r.replicas(t)
	for i := range n {
		pod := r.podName(i)
		t.Run(pod, func(t *testing.T) {
			env := r.podEnv(t, pod, map[string]map[string]string{"keyraft-identities": ids})
			pf := r.materialize(t, secrets)
			c := r.container(t)
			var args []string
			for _, a := range c.Args {
				args = append(args, expand(a, env))
			}
			if len(args) != 3 || args[0] != "server" || args[1] != "--config" {
				t.Fatalf("args %q", args)
			}
			for k, v := range env {
				if strings.HasPrefix(v, "/etc/") {
					v = pf.path(t, v)
				}
				t.Setenv(k, v)
			}
			cfg, err := config.Load(pf.path(t, args[2]))
			if err != nil {
				t.Fatalf("config of %s: %v", pod, err)
			}
			if _, err := cfg.TLS.LoadCertificate(); err != nil {
				t.Fatalf("certificate of %s: %v", pod, err)
			}

			cl := cfg.Cluster
			if cl.NodeID != pod || cl.Advertise != pod+"."+svc+":7374" || cl.APIAdvertise != "https://"+pod+"."+svc+":7373" {
				t.Errorf("cluster: id %q, advertise %q, api %q", cl.NodeID, cl.Advertise, cl.APIAdvertise)
			}
			if cl.DataDir != "/data" || pf.mounts["/data"] != "data" {
				t.Errorf("data_dir %q is not the data volume (%v)", cl.DataDir, pf.mounts)
			}
			// keyraft-0 forms the cluster; the others join through every
			// member's stable name.
			if i == 0 {
				if len(cl.Join) != 0 {
					t.Errorf("%s joins %v; it must bootstrap", pod, cl.Join)
				}
			} else {
				var want []string
				for j := range n {
					want = append(want, "https://"+r.podName(j)+"."+svc+":7373")
				}
				if !slices.Equal(cl.Join, want) {
					t.Errorf("%s joins %v, want %v", pod, cl.Join, want)
				}
			}
			if !cfg.API["/v1/ready"].SkipAuth {
				t.Error("the probes call /v1/ready without a client certificate: api: /v1/ready: skip_auth must be true")
			}
			nodes := cfg.Policies["cluster-nodes"]
			if !slices.Contains(nodes.Allow, "/v1/cluster/join") {
				t.Errorf("cluster-nodes policy %+v", nodes)
			}
			for j := range n {
				if id := ids[fmt.Sprintf("KEYRAFT_%d_IDENTITY", j)]; !slices.Contains(nodes.Identities, id) {
					t.Errorf("cluster-nodes does not name keyraft-%d's identity", j)
				}
			}
			if cfg.Admin != ids["ADMIN_IDENTITY"] || !slices.Contains(cfg.Policies["minio"].Identities, ids["MINIO_IDENTITY"]) {
				t.Errorf("admin %q, minio policy %+v", cfg.Admin, cfg.Policies["minio"])
			}
			if aws := cfg.Keystore.AWS; aws == nil || aws.Region != env["AWS_REGION"] || aws.Endpoint == "" || aws.Credentials.AccessKey != "" {
				t.Errorf("keystore %+v: want AWS Secrets Manager in AWS_REGION, credentials from the SDK's sources", aws)
			}
		})
	}
}

// TestConfigsDifferOnlyInJoin keeps bootstrap.yaml and join.yaml in step.
func TestConfigsDifferOnlyInJoin(t *testing.T) {
	read := func(name string) map[string]any {
		data, err := os.ReadFile(filepath.Join("config", name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yamlUnmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	boot, join := read("bootstrap.yaml"), read("join.yaml")
	cl := join["cluster"].(map[string]any)
	if _, ok := cl["join"]; !ok {
		t.Fatal("join.yaml has no cluster.join")
	}
	delete(cl, "join")
	if fmt.Sprint(boot) != fmt.Sprint(join) {
		t.Errorf("bootstrap.yaml and join.yaml differ beyond cluster.join:\n%v\n%v", boot, join)
	}
}
