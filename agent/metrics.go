package agent

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/internal/metrics"
)

// Agent metric names (docs/metrics.md).
const (
	metricFaultsActive  = "turbulence_agent_faults_active"
	metricLocallyHalted = "turbulence_agent_locally_halted"
	metricFleetHalted   = "turbulence_agent_fleet_halted"
)

// newMetricsRegistry builds the agent's exposition: the standard
// process and Go collectors, the certificate expiry, and the gauges
// below, every one read from the Manager at scrape time, so it cannot
// drift from what the agent holds.
func newMetricsRegistry(m *inject.Manager) *prometheus.Registry {
	reg := metrics.NewRegistry()
	metrics.RegisterCertExpiry(reg)
	kinds := m.Kinds()
	reg.MustRegister(
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
func (a *Agent) serveMetrics(ctx context.Context) (stop func(), err error) {
	if a.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s, err := metrics.Serve(mctx, a.cfg.MetricsAddr, newMetricsRegistry(a.manager), a.log)
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
