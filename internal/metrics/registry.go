package metrics

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// NewRegistry returns a registry holding the standard process_* and go_*
// collectors, ready for a daemon's own metrics. Each daemon builds its
// own rather than using the client library's global one, so that tests
// running several daemons in one process do not collide.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}

// Emit records one sample of a GaugeFunc or CounterFunc; labelValues
// follow the collector's label names in order.
type Emit func(value float64, labelValues ...string)

// funcCollector produces a family's samples at scrape time.
type funcCollector struct {
	desc    *prometheus.Desc
	typ     prometheus.ValueType
	collect func(Emit)
}

// GaugeFunc returns a collector of the gauge family name whose samples
// collect produces at every scrape, from state kept elsewhere. collect
// must emit each label set at most once (the registry refuses the whole
// family otherwise); it may run for two scrapes at once.
func GaugeFunc(name, help string, labelNames []string, collect func(Emit)) prometheus.Collector {
	return &funcCollector{desc: prometheus.NewDesc(name, help, labelNames, nil), typ: prometheus.GaugeValue, collect: collect}
}

// CounterFunc is GaugeFunc for counts kept elsewhere, which must only go
// up; by Prometheus convention name ends in _total.
func CounterFunc(name, help string, labelNames []string, collect func(Emit)) prometheus.Collector {
	return &funcCollector{desc: prometheus.NewDesc(name, help, labelNames, nil), typ: prometheus.CounterValue, collect: collect}
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	c.collect(func(v float64, labelValues ...string) {
		// A wrong label count is a programmer error: the registry reports
		// it as an invalid metric, which the handler logs and skips.
		m, err := prometheus.NewConstMetric(c.desc, c.typ, v, labelValues...)
		if err != nil {
			m = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- m
	})
}

// Write gathers g and writes it in the Prometheus text format, the way a
// scrape without content negotiation sees it. Tests read expositions
// with it.
func Write(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
