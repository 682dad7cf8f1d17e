package probe

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// service is a real loopback HTTP service exposing metrics the test sets.
type service struct {
	reg  *prometheus.Registry
	srv  *httptest.Server
	addr string // host:port, for Prometheus's scrape config
}

// newService starts the service; t.Cleanup stops it.
func newService(t testing.TB) *service {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return &service{reg: reg, srv: srv, addr: strings.TrimPrefix(srv.URL, "http://")}
}

func (s *service) counter(t testing.TB, name string) prometheus.Counter {
	t.Helper()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "set by the test"})
	s.reg.MustRegister(c)
	return c
}

func (s *service) gauge(t testing.TB, name string) prometheus.Gauge {
	t.Helper()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "set by the test"})
	s.reg.MustRegister(g)
	return g
}

// startPrometheus starts a real Prometheus scraping target (host:port) as
// job "svc" every scrapeInterval (internal/testutil starts and stops it).
func startPrometheus(t testing.TB, target string, scrapeInterval time.Duration) *testutil.Prometheus {
	t.Helper()
	return testutil.StartPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: %[1]v
  evaluation_interval: %[1]v
scrape_configs:
  - job_name: svc
    scrape_interval: %[1]v
    scrape_timeout: %[1]v
    static_configs:
      - targets: [%[2]q]
`, scrapeInterval, target))
}
