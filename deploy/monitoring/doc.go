// Package monitoring holds no code of its own: it is the home of Keyraft's
// Grafana dashboard (grafana-dashboard.json), Prometheus alert rules
// (alerts.yaml) and scrape example (prometheus.yaml), whose tests start a
// node in-process and check that every metric they use is one it serves.
package monitoring
