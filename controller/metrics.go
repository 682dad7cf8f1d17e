package controller

import (
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

// RegisterMetrics adds this node's gauges to reg, each read at scrape
// time: whether it leads, its raft log's last index, how many agents
// hold a session with it, and the refusals it counted (internal/refusal). turbulence-controller serves reg on
// --metrics-addr (Config.MetricsAddr); the registry is built before the
// controller, so that a busy metrics port fails before raft starts, and
// filled here once the controller exists.
func (c *Controller) RegisterMetrics(reg *metrics.Registry) {
	reg.GaugeFunc(metricIsLeader,
		"1 while this node is the raft leader and has caught up (it then holds the agent sessions and runs leader-only work).",
		nil, func(emit metrics.Emit) {
			v := 0.0
			if c.IsLeader() {
				v = 1
			}
			emit(v)
		})
	reg.GaugeFunc(metricRaftLastIndex,
		"Index of the last entry in this node's raft log; a follower far behind the leader is not replicating.",
		nil, func(emit metrics.Emit) { emit(float64(c.LastRaftIndex())) })
	reg.GaugeFunc(metricAgentsConnected,
		"Agents holding a session with this node (only the leader keeps sessions, so followers show 0).",
		nil, func(emit metrics.Emit) { emit(float64(c.ConnectedAgents())) })
	reg.CounterFunc(metricRefusals,
		"Refused calls, handshakes and connections since the start, by listener (grpc, raft) and reason (permission_denied, unauthenticated, wrong_agent_id, tls_handshake, connection_limit).",
		[]string{"listener", "reason"}, func(emit metrics.Emit) {
			c.refusals.Each(func(k refusal.Key, n uint64) { emit(float64(n), k.Listener, k.Reason) })
		})
}
