package kubernetes

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeService is the part of a docker-compose.yml service compared here.
type composeService struct {
	Hostname    string            `json:"hostname"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	Networks    map[string]struct {
		Aliases []string `json:"aliases"`
	} `json:"networks"`
}

// TestComposeRunsTheSameFlow keeps the Compose cluster, which CI runs for
// real (scripts/compose-check.sh), on the StatefulSet's flow: the same pod
// names and DNS names, the same config file per node, the same arguments
// and the same per-node environment.
func TestComposeRunsTheSameFlow(t *testing.T) {
	r := render(t)
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]composeService `json:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	configItem := map[string]string{} // file in the pod → ConfigMap key
	for _, it := range r.volume(t, "config").ConfigMap.Items {
		configItem[it.Path] = it.Key
	}
	c := r.container(t)
	for i := range r.replicas(t) {
		pod := r.podName(i)
		svc, ok := compose.Services[pod]
		if !ok {
			t.Errorf("docker-compose.yml has no service %s", pod)
			continue
		}
		env := r.podEnv(t, pod, map[string]map[string]string{"keyraft-identities": ids})
		var args []string
		for _, a := range c.Args {
			args = append(args, expand(a, env))
		}
		if !slices.Equal(svc.Command, args) {
			t.Errorf("%s: command %q, the pod runs %q", pod, svc.Command, args)
		}
		for k, v := range env {
			if strings.HasPrefix(k, "KEYRAFT_") && !strings.HasSuffix(k, "_IDENTITY") && !strings.HasPrefix(k, "KEYRAFT_AWS") && svc.Environment[k] != v {
				t.Errorf("%s: %s=%q in compose, %q in the pod", pod, k, svc.Environment[k], v)
			}
		}
		file := pod + ".yaml"
		mount := "./deploy/kubernetes/config/" + configItem[file] + ":/etc/keyraft/config/" + file + ":ro"
		if configItem[file] == "" || !slices.Contains(svc.Volumes, mount) {
			t.Errorf("%s: compose does not mount %s", pod, mount)
		}
		if tls := "./deploy/generated/" + pod + ":/etc/keyraft/tls/" + pod + ":ro"; !slices.Contains(svc.Volumes, tls) {
			t.Errorf("%s: compose does not mount %s", pod, tls)
		}
		if svc.Hostname != pod || !slices.Contains(svc.Networks["default"].Aliases, pod+"."+r.statefulSet.Spec.ServiceName) {
			t.Errorf("%s: hostname %q, aliases %v", pod, svc.Hostname, svc.Networks["default"].Aliases)
		}
	}
}
