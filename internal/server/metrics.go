package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyraft/keyraft/enclave"

	"github.com/keyraft/keyraft/fsm"
	"github.com/keyraft/keyraft/store/metered"
)

// registerMetrics adds Keyraft's cluster and cache metrics to the API's
// registry, next to KES's names. They are computed at scrape time.
func (s *Server) registerMetrics(reg *prometheus.Registry) error {
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, c := range []prometheus.Collector{
		gauge("keyraft_cluster_is_leader", "1 if this node is the Raft leader.", func() float64 { return boolean(s.node.IsLeader()) }),
		gauge("keyraft_cluster_applied_index", "Raft index of the last command this node applied.", func() float64 { return float64(s.fsm.AppliedIndex()) }),
		gauge("keyraft_cluster_members", "Voting and non-voting members in the Raft configuration.", func() float64 {
			servers, _ := s.node.Servers()
			return float64(len(servers))
		}),
		gauge("keyraft_cache_sealed_keys", "Keys held sealed in the replicated cache (the FSM), all enclaves.", func() float64 { return float64(s.fsm.KeyCount()) }),
		gauge("keyraft_cache_unsealed_keys", "Keys this node holds unsealed (plaintext, in memory).", func() float64 { return float64(s.svc.CacheStats().Unsealed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyraft_cache_unseal_total", Help: "Sealed key records this node unsealed (cache misses of the unsealed layer)."},
			func() float64 { return float64(s.svc.CacheStats().Unseals) }),
		gauge("keyraft_keystore_offline", "1 while the keystore's health check fails.", func() float64 { return boolean(s.svc.Offline()) }),
		gauge("keyraft_node_decrypt_only", "1 while this node, cut off from its leader for cluster.isolation_timeout, serves decrypts only (until max(isolation_timeout, cache.expiry.offline)).", func() float64 { return boolean(s.decryptOnly.Load() && s.fenced.Load() == nil) }),
		gauge("keyraft_node_fenced", "1 while this node refuses to serve: removed from the cluster, or no leader contact for cluster.isolation_timeout.", func() float64 { return boolean(s.fenced.Load() != nil) }),
		gauge("keyraft_cluster_leader_contact_age_seconds", "Seconds since this node last heard its leader (0 on the leader).", func() float64 {
			last := s.node.LeaderContact()
			if last.IsZero() {
				last = s.serving
			}
			return time.Since(last).Seconds()
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	if err := reg.Register(scheduleCollector{s.svc}); err != nil {
		return err
	}
	return s.registerCounters(reg)
}

// scheduleCollector reports the age of the newest version of every cached
// key under a rotation rule (the rules bound how many there are).
type scheduleCollector struct{ svc *enclave.Service }

var newestVersionAge = prometheus.NewDesc("keyraft_key_newest_version_age_seconds",
	"Age of the newest version of each key under a rotation rule (config section rotation).",
	[]string{"enclave", "key"}, nil)

// Describe implements prometheus.Collector.
func (scheduleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- newestVersionAge }

// Collect implements prometheus.Collector.
func (c scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, k := range c.svc.ScheduledKeys() {
		ch <- prometheus.MustNewConstMetric(newestVersionAge, prometheus.GaugeValue, now.Sub(k.NewestAt).Seconds(), k.Enclave, k.Name)
	}
}

// registerCounters adds the per-kind counters: keystore calls and Raft
// applies.
func (s *Server) registerCounters(reg *prometheus.Registry) error {
	var cs []prometheus.Collector
	for _, kind := range metered.Kinds {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyraft_keystore_calls_total", Help: "Calls this node made to the keystore, by kind.",
			ConstLabels: prometheus.Labels{"op": kind},
		}, func() float64 { return float64(s.keystore.Calls(kind)) }))
	}
	for _, t := range fsm.Types() {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyraft_raft_applies_total", Help: "Raft commands this node applied since it started, by type.",
			ConstLabels: prometheus.Labels{"type": t.String()},
		}, func() float64 { return float64(s.fsm.Applied(t)) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
