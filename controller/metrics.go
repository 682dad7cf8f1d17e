package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/refusal"
)

// Controller metric names (docs/metrics.md).
const (
	metricIsLeader        = "turbulence_controller_is_leader"
	metricRaftLastIndex   = "turbulence_controller_raft_last_index"
	metricAgentsConnected = "turbulence_controller_agents_connected"
	metricRefusals        = "turbulence_controller_refusals_total"
)

// RegisterMetrics adds this node's metrics to reg: the gauges read at
// scrape time (whether it leads, its raft log's last index, how many
// agents hold a session with it, the refusals it counted in
// internal/refusal), the agent hub's counters and histograms
// (agentapi.Metrics) and raft's own metrics (raftmetrics.go).
// turbulence-controller serves reg on --metrics-addr
// (Config.MetricsAddr); the registry is built before the controller, so
// that a busy metrics port fails before raft starts, and filled here
// once the controller exists.
func (c *Controller) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricIsLeader,
			Help: "1 while this node is the raft leader and has caught up (it then holds the agent sessions and runs leader-only work).",
		}, func() float64 {
			if c.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricRaftLastIndex,
			Help: "Index of the last entry in this node's raft log; a follower far behind the leader is not replicating.",
		}, func() float64 { return float64(c.LastRaftIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricAgentsConnected,
			Help: "Agents holding a session with this node (only the leader keeps sessions, so followers show 0).",
		}, func() float64 { return float64(c.ConnectedAgents()) }),
		metrics.CounterFunc(metricRefusals,
			"Refused calls, handshakes and connections since the start, by listener (grpc, raft) and reason (permission_denied, unauthenticated, wrong_agent_id, tls_handshake, connection_limit).",
			[]string{"listener", "reason"}, func(emit metrics.Emit) {
				c.refusals.Each(func(k refusal.Key, n uint64) { emit(float64(n), k.Listener, k.Reason) })
			}),
	)
	reg.MustRegister(c.hub.Collectors()...)
	if c.raftMetrics != nil {
		reg.MustRegister(c.raftMetrics)
	}
}
