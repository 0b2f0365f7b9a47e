package kubernetes

import (
	"crypto/sha256"

	"sigs.k8s.io/yaml"
)

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func yamlUnmarshal(data []byte, out any) error { return yaml.Unmarshal(data, out) }
