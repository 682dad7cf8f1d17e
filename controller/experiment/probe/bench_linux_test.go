package probe

import (
	"testing"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
)

// BenchmarkPrometheusBreachToFailingSample: a gauge of a loopback service
// goes over the probe's max; how long until the Prometheus probe
// (interval 100ms) has a failing sample. Prometheus scrapes every 100ms,
// so the figure is a scrape's delay plus a probe's plus the query.
func BenchmarkPrometheusBreachToFailingSample(b *testing.B) {
	svc := newService(b)
	bad := svc.gauge(b, "svc_bad")
	prom := startPrometheus(b, svc.addr, benchInterval)
	p, err := New(experiment.Probe{Name: "slo", Interval: config.Duration(benchInterval),
		Prometheus: &experiment.PrometheusProbe{URL: prom.URL, Query: `svc_bad{job="svc"}`, Max: ptr(0.5)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	breachToFailure(b, p, func(on bool) {
		if on {
			bad.Set(1)
		} else {
			bad.Set(0)
		}
	})
}
