package controller

import (
	"sync"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprometheus "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// raftBridge carries hashicorp/raft's own metrics (raft_commitTime,
// raft_state_leader, raft_boltdb_*, …) into the controller's registry.
//
// Raft v1.7.3 and raft-boltdb/v2 emit through go-metrics' compat package,
// which forwards to armon/go-metrics by default and to
// hashicorp/go-metrics under the hashicorpmetrics build tag. The bridge
// uses the same compat package for both the global and the Prometheus
// sink, so it is wired to whichever of the two raft was built against;
// a sink from the other module would receive nothing (the bridge test
// in raftmetrics_test.go scrapes a raft_* series from a real node to
// prove it does).
//
// The go-metrics global is one per process, and so is the sink: every
// controller of the process (one in a daemon, several in some tests)
// reports into it, and every registry that asks for raft's metrics
// collects the same sink.
var raftBridge struct {
	once sync.Once
	sink *gmprometheus.PrometheusSink
	err  error
}

// raftMetrics installs the bridge on first use and returns its
// collector. Called from New, before raft starts, so that the first
// election is counted too.
func raftMetrics() (prometheus.Collector, error) {
	raftBridge.once.Do(func() {
		sink, err := gmprometheus.NewPrometheusSinkFrom(gmprometheus.PrometheusOpts{
			// Raft's keys are fixed names (and peer IDs, bounded by the
			// membership): nothing to expire, and a series that vanished
			// after a quiet minute would break rate() on a dashboard.
			Expiration: 0,
			// The sink registers itself here; the daemons' registries
			// register it again, each its own (RegisterMetrics).
			Registerer: prometheus.NewRegistry(),
			Name:       "turbulence_raft_bridge",
		})
		if err != nil {
			raftBridge.err = err
			return
		}
		cfg := gometrics.DefaultConfig("")
		// No hostname in the metric names, and no runtime sampler of
		// go-metrics' own: the go_* collectors report the runtime, and
		// its sampler is a goroutine that never ends.
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
			raftBridge.err = err
			return
		}
		raftBridge.sink = sink
	})
	return raftBridge.sink, raftBridge.err
}
