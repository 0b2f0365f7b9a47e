package server

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyraft/keyraft/api"
)

// limitedListener is the API listener wrapped by api.GuardListener with
// limits.max_connections applied; connections closed because of the cap
// are counted in keyraft_api_connections_rejected_total.
func (s *Server) limitedListener() net.Listener {
	max := s.cfg.Limits.MaxConnections
	rejected := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keyraft", Subsystem: "api", Name: "connections_rejected_total",
		Help: "API connections closed at once because limits.max_connections were open.",
	})
	_ = s.api.Registry().Register(rejected) // fresh registry per node: cannot collide
	return api.GuardListener(s.apiLn, max, rejected.Inc)
}
