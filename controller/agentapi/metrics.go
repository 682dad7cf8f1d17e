package agentapi

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Metric names of the hub (docs/metrics.md).
const (
	MetricFaultsEnded       = "turbulence_controller_faults_ended_total"
	MetricFaultsUnconfirmed = "turbulence_controller_faults_unconfirmed_total"
	MetricApplyDuration     = "turbulence_controller_fault_apply_duration_seconds"
	MetricLeaseExpiries     = "turbulence_controller_lease_expiries_total"
	MetricSessionsEnded     = "turbulence_controller_agent_sessions_ended_total"
	MetricHeartbeatInterval = "turbulence_controller_heartbeat_interval_seconds"
)

// Causes of a session's end, the cause label of MetricSessionsEnded.
const (
	// CauseAgentClosed: the agent half-closed its stream (it stops, or
	// drops a session to follow another leader).
	CauseAgentClosed = "agent_closed"
	// CauseConnectionLost: the stream broke under the session — a reset,
	// the agent killed, a host gone, gRPC keepalive giving up; gRPC does
	// not tell these apart at this layer.
	CauseConnectionLost = "connection_lost"
	// CauseSuperseded: a newer session of the same agent replaced it.
	CauseSuperseded = "superseded"
	// CauseNotLeader: this node stopped leading (sessions are leader-only
	// work).
	CauseNotLeader = "not_leader"
	// CauseShutdown: the controller is stopping.
	CauseShutdown = "shutdown"
	// CauseSendQueueFull: the agent stopped reading its session.
	CauseSendQueueFull = "send_queue_full"
	// CauseBadMessage: the agent sent a message over its bounds.
	CauseBadMessage = "bad_message"
)

// Results of an apply, the result label of MetricApplyDuration.
const (
	ResultApplied = "applied"
	ResultRefused = "refused"
)

// controllerEndReasons are the reason labels of MetricFaultsEnded that
// the controller can record, exported at 0 from the start so that rate()
// and alerts see a series before its first end.
var controllerEndReasons = []string{
	metrics.EndDeadline, metrics.EndRevertRequested, metrics.EndHalt, metrics.EndLocalHalt,
	metrics.EndLeaseExpired, metrics.EndAgentStopping, metrics.EndAgentRestarted,
	metrics.EndWorkerExited, metrics.EndNotApplied, metrics.EndHeldWhileUnknown,
	metrics.EndFailed, metrics.EndOther,
}

var unconfirmedReasons = []string{
	metrics.EndLeaseExpired, metrics.EndDeadlineUnreachable, metrics.EndAwaitingReport,
	metrics.EndNoRecord, metrics.EndOther,
}

var sessionCauses = []string{
	CauseAgentClosed, CauseConnectionLost, CauseSuperseded, CauseNotLeader,
	CauseShutdown, CauseSendQueueFull, CauseBadMessage,
}

// applyBuckets spans 1 ms (an agent on the same host answering a
// cached apply) to 10 s (a memory fault ramping, a raft write held
// through an election).
var applyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// hubMetrics are the hub's counts of events. They are counted where the
// event happens, on the node that saw it (the leader of the moment):
// after a leader change the new leader counts from zero, which
// Prometheus' rate() and increase() take in their stride, summed over
// the cluster's nodes.
type hubMetrics struct {
	faultsEnded       *prometheus.CounterVec
	faultsUnconfirmed *prometheus.CounterVec
	applyDuration     *prometheus.HistogramVec
	leaseExpiries     prometheus.Counter
	sessionsEnded     *prometheus.CounterVec
}

func newHubMetrics() *hubMetrics {
	m := &hubMetrics{
		faultsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricFaultsEnded,
			Help: "Faults this node recorded as ended (REVERTED or FAILED), by reason (deadline, revert_requested, halt, lease_expired, failed, …; docs/metrics.md).",
		}, []string{"reason"}),
		faultsUnconfirmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricFaultsUnconfirmed,
			Help: "Faults this node recorded as UNCONFIRMED (outcome unknown until the agent reports), by reason (lease_expired, deadline_unreachable, awaiting_report, no_record).",
		}, []string{"reason"}),
		applyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricApplyDuration,
			Help:    "Time from the ApplyFault call to the agent's verdict (applied or refused), for faults dispatched at once to a connected agent.",
			Buckets: applyBuckets,
		}, []string{"result"}),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricLeaseExpiries,
			Help: "Agents whose lease ran out while they held live faults, as the leader saw it: their faults were recorded UNCONFIRMED.",
		}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricSessionsEnded,
			Help: "Agent sessions this node ended or lost, by cause (agent_closed, connection_lost, superseded, not_leader, shutdown, send_queue_full, bad_message).",
		}, []string{"cause"}),
	}
	for _, r := range controllerEndReasons {
		m.faultsEnded.WithLabelValues(r)
	}
	for _, r := range unconfirmedReasons {
		m.faultsUnconfirmed.WithLabelValues(r)
	}
	for _, r := range []string{ResultApplied, ResultRefused} {
		m.applyDuration.WithLabelValues(r)
	}
	for _, c := range sessionCauses {
		m.sessionsEnded.WithLabelValues(c)
	}
	return m
}

// Collectors returns the hub's metrics, for the controller's registry
// (controller/metrics.go).
func (h *Hub) Collectors() []prometheus.Collector {
	m := h.metrics
	interval := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricHeartbeatInterval,
		Help: "The heartbeat interval this node tells its agents now: the configured one, slower when the fleet would send more than --max-heartbeat-rate heartbeats a second (heartbeat pacing).",
	}, func() float64 { return h.HeartbeatInterval().Seconds() })
	return []prometheus.Collector{m.faultsEnded, m.faultsUnconfirmed, m.applyDuration, m.leaseExpiries, m.sessionsEnded, interval}
}

// transition counts a fault's move from prev to now, as the raft entry
// this node proposed recorded it. A report of an end already recorded
// (agents repeat them) changes nothing and counts nothing.
func (m *hubMetrics) transition(prev, now *turbulencev1.Fault) {
	switch {
	case !state.Ended(prev.GetState()) && state.Ended(now.GetState()):
		reason := metrics.EndFailed
		if now.GetState() == stReverted {
			reason = metrics.EndReason(now.GetReason())
		}
		m.faultsEnded.WithLabelValues(reason).Inc()
	case prev.GetState() != stUnconfirmed && now.GetState() == stUnconfirmed:
		m.faultsUnconfirmed.WithLabelValues(metrics.EndReason(now.GetReason())).Inc()
	}
}

// applied observes the time from the ApplyFault call (start) to the
// agent's verdict.
func (m *hubMetrics) applied(start time.Time, ok bool) {
	result := ResultRefused
	if ok {
		result = ResultApplied
	}
	m.applyDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

// sessionEnded counts a session's end by cause.
func (m *hubMetrics) sessionEnded(cause string) {
	m.sessionsEnded.WithLabelValues(cause).Inc()
}

// endedError is the cause a session was ended with by the hub: the
// status the agent sees, and the label it is counted under.
type endedError struct {
	label string
	err   error
}

func (e *endedError) Error() string { return e.err.Error() }
func (e *endedError) Unwrap() error { return e.err }

// GRPCStatus lets the handler return the cause as the session's status.
func (e *endedError) GRPCStatus() *status.Status {
	st, _ := status.FromError(e.err)
	return st
}

// endCause names why a session's context ended: the label the hub gave
// it (session.endAs), or, for any other end — a Send that failed, gRPC
// cancelling the stream — a lost connection.
func endCause(cause error) string {
	if e, ok := errors.AsType[*endedError](cause); ok {
		return e.label
	}
	return CauseConnectionLost
}

// recvCause names why a session whose Recv failed ended.
func recvCause(err error) string {
	if status.Code(err) == codes.InvalidArgument {
		return CauseBadMessage
	}
	return CauseConnectionLost
}
