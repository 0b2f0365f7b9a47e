package kubernetes

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomization.yaml this directory uses; an
// unknown field fails the strict decoding, so the renderer below never
// silently ignores a feature.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	GeneratorOptions struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"generatorOptions"`
}

// rendered is what `kubectl apply -k .` would create, decoded into the
// Kubernetes API types.
type rendered struct {
	namespace      string
	namespaceObj   *corev1.Namespace
	statefulSet    *appsv1.StatefulSet
	services       map[string]*corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	serviceAccount *corev1.ServiceAccount
	configMaps     map[string]*corev1.ConfigMap
}

// documents splits a multi-document YAML file.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decodeStrict decodes one YAML document into out, failing on unknown or
// duplicate fields.
func decodeStrict(t *testing.T, what string, doc []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, out); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// render reads kustomization.yaml and builds its objects as kustomize does
// for the features used here: resources, the namespace and a config map
// generator without name hashing.
func render(t *testing.T) *rendered {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	decodeStrict(t, "kustomization.yaml", data, &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || k.Namespace == "" {
		t.Fatalf("kustomization.yaml: %+v", k)
	}
	r := &rendered{namespace: k.Namespace, services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	setNS := func(m *metav1.ObjectMeta) {
		if m.Namespace != "" && m.Namespace != k.Namespace {
			t.Errorf("%s has namespace %q, the kustomization %q", m.Name, m.Namespace, k.Namespace)
		}
		m.Namespace = k.Namespace
	}
	for _, file := range k.Resources {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(data) {
			what := file + " document " + string(rune('1'+i))
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
			case "v1/Namespace":
				r.namespaceObj = new(corev1.Namespace)
				decodeStrict(t, what, doc, r.namespaceObj)
			case "v1/Service":
				s := new(corev1.Service)
				decodeStrict(t, what, doc, s)
				setNS(&s.ObjectMeta)
				r.services[s.Name] = s
			case "v1/ServiceAccount":
				r.serviceAccount = new(corev1.ServiceAccount)
				decodeStrict(t, what, doc, r.serviceAccount)
				setNS(&r.serviceAccount.ObjectMeta)
			case "apps/v1/StatefulSet":
				if r.statefulSet != nil {
					t.Fatalf("%s: a second StatefulSet", what)
				}
				r.statefulSet = new(appsv1.StatefulSet)
				decodeStrict(t, what, doc, r.statefulSet)
				setNS(&r.statefulSet.ObjectMeta)
			case "policy/v1/PodDisruptionBudget":
				r.pdb = new(policyv1.PodDisruptionBudget)
				decodeStrict(t, what, doc, r.pdb)
				setNS(&r.pdb.ObjectMeta)
			default:
				t.Fatalf("%s: unexpected object %s", what, gvk)
			}
		}
	}
	if !k.GeneratorOptions.DisableNameSuffixHash {
		t.Fatal("the StatefulSet names the config map: generatorOptions.disableNameSuffixHash must be true")
	}
	for _, g := range k.ConfigMapGenerator {
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, Data: map[string]string{}}
		cm.Name = g.Name
		setNS(&cm.ObjectMeta)
		for _, f := range g.Files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cm.Data[filepath.Base(f)] = string(data)
		}
		r.configMaps[g.Name] = cm
	}
	if r.namespaceObj == nil || r.statefulSet == nil || r.pdb == nil || r.serviceAccount == nil {
		t.Fatalf("missing objects: %+v", r)
	}
	return r
}

// container returns the StatefulSet's keyraft container.
func (r *rendered) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := r.statefulSet.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "keyraft" {
		t.Fatalf("containers: %+v", cs)
	}
	return &cs[0]
}

func (r *rendered) replicas(t *testing.T) int {
	t.Helper()
	if r.statefulSet.Spec.Replicas == nil {
		t.Fatal("StatefulSet without replicas")
	}
	return int(*r.statefulSet.Spec.Replicas)
}

func (r *rendered) podName(ordinal int) string {
	return r.statefulSet.Name + "-" + string(rune('0'+ordinal))
}

// volume returns the pod volume named name.
func (r *rendered) volume(t *testing.T, name string) *corev1.Volume {
	t.Helper()
	for i, v := range r.statefulSet.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &r.statefulSet.Spec.Template.Spec.Volumes[i]
		}
	}
	for _, c := range r.statefulSet.Spec.VolumeClaimTemplates {
		if c.Name == name {
			return &corev1.Volume{Name: name}
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

// expand expands $(VAR) references as the kubelet does in env values and
// args: defined variables are replaced, $$ is a literal $, anything else is
// left as written.
func expand(s string, env map[string]string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			switch s[i+1] {
			case '$':
				b.WriteByte('$')
				i++
				continue
			case '(':
				if end := strings.IndexByte(s[i:], ')'); end > 0 {
					if v, ok := env[s[i+2:i+end]]; ok {
						b.WriteString(v)
						i += end
						continue
					}
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// podEnv resolves the container's env for the pod named pod: the downward
// API's metadata.name and namespace, literal values with $(VAR) expansion,
// and the envFrom sources from from (name → data; optional sources may be
// missing).
func (r *rendered) podEnv(t *testing.T, pod string, from map[string]map[string]string) map[string]string {
	t.Helper()
	c := r.container(t)
	env := map[string]string{}
	for _, src := range c.EnvFrom {
		var name string
		optional := false
		switch {
		case src.ConfigMapRef != nil:
			name = src.ConfigMapRef.Name
			optional = src.ConfigMapRef.Optional != nil && *src.ConfigMapRef.Optional
		case src.SecretRef != nil:
			name = src.SecretRef.Name
			optional = src.SecretRef.Optional != nil && *src.SecretRef.Optional
		}
		data, ok := from[name]
		if !ok && !optional {
			t.Fatalf("envFrom %q: not provided", name)
		}
		for k, v := range data {
			env[src.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = pod
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = r.namespace
		default:
			t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
		}
	}
	return env
}
