package agent

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/session"
	"github.com/turbulence-sre/turbulence/internal/metrics"
)

// Agent metric names (docs/metrics.md).
const (
	metricFaultsActive        = "turbulence_agent_faults_active"
	metricLocallyHalted       = "turbulence_agent_locally_halted"
	metricFleetHalted         = "turbulence_agent_fleet_halted"
	metricControllerConnected = "turbulence_agent_controller_connected"
	metricFaultsApplied       = "turbulence_agent_faults_applied_total"
	metricFaultsEnded         = "turbulence_agent_faults_ended_total"
	metricRevertLateness      = "turbulence_agent_revert_lateness_seconds"
	metricSessionReconnects   = "turbulence_agent_session_reconnects_total"
)

// agentEndReasons are the reason labels the agent's faults can end with,
// exported at 0 from the start for every kind.
var agentEndReasons = []string{
	metrics.EndDeadline, metrics.EndRevertRequested, metrics.EndHalt, metrics.EndLocalHalt,
	metrics.EndLeaseExpired, metrics.EndAgentStopping, metrics.EndWorkerExited,
	metrics.EndNotApplied, metrics.EndOther,
}

// latenessBuckets span 100 µs (a timer firing on an idle host and a
// netlink delete) to 5 s (a worker that ignores SIGTERM until its grace
// runs out, a host thrashing): invariant 3 promises under a second.
var latenessBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// agentMetrics counts what happens to the agent's faults and session.
// It is the Manager's Observer from New on, whether or not an endpoint
// serves it: counting costs a few atomic adds.
type agentMetrics struct {
	applied    *prometheus.CounterVec
	ended      *prometheus.CounterVec
	lateness   *prometheus.HistogramVec
	reconnects prometheus.Counter
	opened     atomic.Int64
}

func newAgentMetrics(kinds []string) *agentMetrics {
	am := &agentMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricFaultsApplied,
			Help: "Faults this agent applied since it started, by kind.",
		}, []string{"kind"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricFaultsEnded,
			Help: "Faults this agent took back since it started, by kind and reason (deadline, revert_requested, halt, local_halt, lease_expired, agent_stopping, worker_exited, not_applied, other).",
		}, []string{"kind", "reason"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricRevertLateness,
			Help:    "For faults ended by their deadline: how long after the deadline the fault was really gone (0 when on time), by kind.",
			Buckets: latenessBuckets,
		}, []string{"kind"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricSessionReconnects,
			Help: "Sessions with a controller leader opened after the first one of this run: every failover, lost connection or redirect that ended a session adds one.",
		}),
	}
	for _, k := range kinds {
		am.applied.WithLabelValues(k)
		am.lateness.WithLabelValues(k)
		for _, r := range agentEndReasons {
			am.ended.WithLabelValues(k, r)
		}
	}
	return am
}

func (am *agentMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{am.applied, am.ended, am.lateness, am.reconnects}
}

// FaultApplied implements inject.Observer.
func (am *agentMetrics) FaultApplied(kind string) { am.applied.WithLabelValues(kind).Inc() }

// FaultEnded implements inject.Observer: the end by reason, and for an
// end by deadline, how late the revert came.
func (am *agentMetrics) FaultEnded(kind, reason string, deadline, endedAt time.Time) {
	label := metrics.EndReason(reason)
	am.ended.WithLabelValues(kind, label).Inc()
	if label == metrics.EndDeadline {
		// A worker that exits on its own timer a hair before the
		// deadline ends "by deadline" too: not late, so 0.
		am.lateness.WithLabelValues(kind).Observe(max(endedAt.Sub(deadline), 0).Seconds())
	}
}

// sessionOpened counts a session welcomed by a leader; every one after
// the first of this run is a reconnect.
func (am *agentMetrics) sessionOpened() {
	if am.opened.Add(1) > 1 {
		am.reconnects.Inc()
	}
}

// newMetricsRegistry builds the agent's exposition: the standard
// process and Go collectors, the certificate expiry, and the gauges
// below, every one read from the Manager at scrape time, so it cannot
// drift from what the agent holds.
func newMetricsRegistry(m *inject.Manager, am *agentMetrics, connected func() bool) *prometheus.Registry {
	reg := metrics.NewRegistry()
	metrics.RegisterCertExpiry(reg)
	reg.MustRegister(am.collectors()...)
	kinds := m.Kinds()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricControllerConnected,
			Help: "1 while the agent holds a session with a controller leader (its lease is being renewed).",
		}, func() float64 { return boolValue(connected()) }),
		metrics.GaugeFunc(metricFaultsActive,
			"Faults this agent holds (applied, or being applied), by kind; every kind the agent can apply is listed, 0 when none is held.",
			[]string{"kind"},
			func(emit metrics.Emit) {
				n := make(map[string]int, len(kinds))
				// HeldKinds, not Held: Held measures every fault (reads /proc
				// per worker), which a scrape does not need.
				for _, k := range m.HeldKinds() {
					n[k]++
				}
				for _, k := range kinds {
					emit(float64(n[k]), k)
				}
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricLocallyHalted,
			Help: "1 while the agent is halted locally (turbulence-agent halt): it refuses every fault until turbulence-agent resume.",
		}, func() float64 { return boolValue(m.LocallyHalted()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricFleetHalted,
			Help: "1 while the fleet halt (turbctl halt) applies to this agent: it refuses every fault until turbctl resume.",
		}, func() float64 { return boolValue(m.Halted()) }),
	)
	return reg
}

// serveMetrics starts the metrics endpoint when Config.MetricsAddr is
// set. It does not follow ctx: like the local socket, the endpoint stays
// up while the agent reverts its faults at shutdown, so a last scrape can
// see faults_active fall to 0; stop ends it and waits for its goroutines.
func (a *Agent) serveMetrics(ctx context.Context, sess *session.Session) (stop func(), err error) {
	if a.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s, err := metrics.Serve(mctx, a.cfg.MetricsAddr, newMetricsRegistry(a.manager, a.metrics, func() bool { return sess.Controller() != "" }), a.log)
	if err != nil {
		cancel()
		return nil, err
	}
	a.metricsAddr.Store(new(s.Addr()))
	a.log.Info("serving metrics", "addr", s.Addr())
	return func() {
		cancel()
		if err := s.Wait(); err != nil {
			a.log.Error("metrics endpoint failed", "err", err)
		}
	}, nil
}

// MetricsAddr is the address the metrics endpoint is bound to once Run
// has started it, "" before that or when Config.MetricsAddr is empty.
// Tests configure "127.0.0.1:0" and read the port here.
func (a *Agent) MetricsAddr() string {
	if p := a.metricsAddr.Load(); p != nil {
		return *p
	}
	return ""
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
