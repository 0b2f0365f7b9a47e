package server

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyraft/keyraft/api"
	"github.com/keyraft/keyraft/internal/config"
)

// limitedListener is the API listener wrapped by api.GuardListener with
// limits.max_connections and limits.connection_rate applied; connections
// closed because of the cap are counted in
// keyraft_api_connections_rejected_total, those that waited for the rate
// in keyraft_api_connections_paced_total.
func (s *Server) limitedListener() net.Listener {
	rejected := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keyraft", Subsystem: "api", Name: "connections_rejected_total",
		Help: "API connections closed at once because limits.max_connections were open.",
	})
	paced := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keyraft", Subsystem: "api", Name: "connections_paced_total",
		Help: "API connections whose accept waited for limits.connection_rate.",
	})
	reg := s.api.Registry()
	_ = reg.Register(rejected) // fresh registry per node: cannot collide
	_ = reg.Register(paced)
	return api.GuardListener(s.apiLn, api.GuardOptions{
		MaxConnections: s.cfg.Limits.MaxConnections,
		Rejected:       rejected.Inc,
		AcceptRate:     connectionRate(s.cfg.Limits.ConnectionRate),
		Paced:          paced.Inc,
	})
}

// connectionRate maps limits.connection_rate (0: default, -1: off) to
// api.GuardOptions.AcceptRate (0: no pacing).
func connectionRate(configured int) int {
	switch {
	case configured == 0:
		return config.DefaultConnectionRate
	case configured < 0:
		return 0
	}
	return configured
}
