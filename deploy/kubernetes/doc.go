// Package kubernetes holds no code of its own: it is the module of the
// Kubernetes manifests in this directory, whose tests render them (as
// `kubectl apply -k` would), decode every object strictly into the
// Kubernetes API types and load each pod's Keyraft config with the server's
// own loader. It is a separate module so that the Kubernetes API packages
// stay out of the server's dependencies.
package kubernetes
