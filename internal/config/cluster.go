package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

func clusterFromRaw(raw *rawConfig, address string) (Cluster, error) {
	r := &raw.Cluster
	var (
		cl  Cluster
		err error
	)
	if cl.NodeID, err = str(&r.NodeID, "cluster.node_id"); err != nil {
		return cl, err
	}
	if cl.NodeID = strings.TrimSpace(cl.NodeID); cl.NodeID == "" {
		if cl.NodeID, err = os.Hostname(); err != nil {
			return cl, fieldErr("cluster.node_id", 0, fmt.Errorf("no node_id and no host name: %w", err))
		}
	}
	if cl.DataDir, err = str(&r.DataDir, "cluster.data_dir"); err != nil {
		return cl, err
	}
	if strings.TrimSpace(cl.DataDir) == "" {
		cl.DataDir = DefaultDataDir
	}
	if cl.Bootstrap, err = boolean(&r.Bootstrap, "cluster.bootstrap"); err != nil {
		return cl, err
	}
	if cl.IsolationTimeout, err = duration(&r.Isolation, "cluster.isolation_timeout", DefaultIsolationTimeout); err != nil {
		return cl, err
	}
	if cl.IsolationTimeout <= 0 {
		return cl, fieldErrf("cluster.isolation_timeout", deref(&r.Isolation).Line, "must be positive")
	}

	// Address defaults derive from the API address; an invalid API address
	// is reported by validate, so derivation simply gives up here.
	apiHost, apiPort, apiErr := net.SplitHostPort(address)

	if cl.RaftAddress, err = str(&r.RaftAddress, "cluster.raft_address"); err != nil {
		return cl, err
	}
	if cl.RaftAddress = strings.TrimSpace(cl.RaftAddress); cl.RaftAddress == "" && apiErr == nil {
		cl.RaftAddress = net.JoinHostPort(apiHost, DefaultRaftPort)
	}
	if cl.Advertise, err = str(&r.Advertise, "cluster.advertise"); err != nil {
		return cl, err
	}
	if cl.Advertise = strings.TrimSpace(cl.Advertise); cl.Advertise == "" {
		if h, p, err := net.SplitHostPort(cl.RaftAddress); err == nil {
			cl.Advertise = net.JoinHostPort(advertiseHost(h), p)
		}
	}

	if cl.APIAdvertise, err = str(&r.APIAdvertise, "cluster.api_advertise"); err != nil {
		return cl, err
	}
	if cl.APIAdvertise = strings.TrimSpace(cl.APIAdvertise); cl.APIAdvertise == "" {
		if apiErr == nil {
			cl.APIAdvertise = "https://" + net.JoinHostPort(advertiseHost(apiHost), apiPort)
		}
	} else {
		if cl.APIAdvertise, err = normalizeEndpoint(cl.APIAdvertise); err != nil {
			return cl, fieldErr("cluster.api_advertise", deref(&r.APIAdvertise).Line, err)
		}
	}

	join, err := strList(r.Join, "cluster.join", true)
	if err != nil {
		return cl, err
	}
	for i, j := range join {
		e, err := normalizeEndpoint(strings.TrimSpace(j))
		if err != nil {
			return cl, fieldErr(fmt.Sprintf("cluster.join[%d]", i), 0, err)
		}
		cl.Join = append(cl.Join, e)
	}
	return cl, nil
}

// validate checks the cluster fields without applying defaults.
func (cl Cluster) validate() error {
	if strings.TrimSpace(cl.NodeID) == "" {
		return fieldErrf("cluster.node_id", 0, "no node ID specified")
	}
	if strings.TrimSpace(cl.DataDir) == "" {
		return fieldErrf("cluster.data_dir", 0, "no data directory specified")
	}
	if err := checkHostPort("cluster.raft_address", cl.RaftAddress); err != nil {
		return err
	}
	if err := checkHostPort("cluster.advertise", cl.Advertise); err != nil {
		return err
	}
	if _, err := normalizeEndpoint(cl.APIAdvertise); err != nil {
		return fieldErr("cluster.api_advertise", 0, err)
	}
	for i, j := range cl.Join {
		if _, err := normalizeEndpoint(j); err != nil {
			return fieldErr(fmt.Sprintf("cluster.join[%d]", i), 0, err)
		}
	}
	return nil
}

// advertiseHost replaces an unspecified listen host ("", 0.0.0.0, ::) by the
// loopback address, which is at least dialable on this machine.
func advertiseHost(h string) string {
	if h == "" {
		return defaultAdvertiseHost
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return defaultAdvertiseHost
	}
	return h
}

// checkHostPort reports a *FieldError unless s is host:port with a numeric
// port in 0..65535 (the host may be empty, meaning all interfaces).
func checkHostPort(path, s string) error {
	if err := hostPort(s); err != nil {
		return fieldErr(path, 0, err)
	}
	return nil
}

func hostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("invalid host:port %q: %w", s, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port in %q: %w", s, err)
	}
	return nil
}

// normalizeEndpoint turns "host:port" or "https://host:port" into
// "https://host:port". Other schemes, paths and missing ports are errors.
func normalizeEndpoint(s string) (string, error) {
	hp := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("invalid endpoint %q: %w", s, err)
		}
		if u.Scheme != "https" {
			return "", fmt.Errorf("invalid endpoint %q: scheme must be https", s)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return "", fmt.Errorf("invalid endpoint %q: must be https://host:port", s)
		}
		hp = u.Host
	}
	if err := hostPort(hp); err != nil {
		return "", fmt.Errorf("invalid endpoint %q: %w", s, err)
	}
	if h, _, _ := net.SplitHostPort(hp); h == "" {
		return "", fmt.Errorf("invalid endpoint %q: no host", s)
	}
	return "https://" + hp, nil
}
