package probe

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
)

func ptr(v float64) *float64 { return &v }

// TestNew_RefusesBadSpecs checks every rule New enforces: each bad spec is
// refused with an error naming the field and its limit.
func TestNew_RefusesBadSpecs(t *testing.T) {
	t.Parallel()
	okHTTP := &experiment.HTTPProbe{URL: "http://127.0.0.1:1/healthz"}
	okProm := &experiment.PrometheusProbe{URL: "http://127.0.0.1:9090", Query: "up", Max: ptr(1)}
	tests := []struct {
		name  string
		probe experiment.Probe
		want  []string // each must appear in the error
	}{
		{"no name", experiment.Probe{HTTP: okHTTP}, []string{"name: empty"}},
		{"no kind", experiment.Probe{Name: "p"}, []string{"exactly one of http, prometheus and host", "got 0"}},
		{"two kinds", experiment.Probe{Name: "p", HTTP: okHTTP, Prometheus: okProm}, []string{"got 2"}},
		{"interval too short", experiment.Probe{Name: "p", Interval: config.Duration(10 * time.Millisecond), HTTP: okHTTP},
			[]string{"interval: 10ms is under the minimum of 100ms"}},
		{"interval too long", experiment.Probe{Name: "p", Interval: config.Duration(time.Hour), HTTP: okHTTP},
			[]string{"interval: 1h0m0s is over the maximum of 10m0s"}},
		{"http url not http", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "ftp://127.0.0.1/x"}},
			[]string{`probe "p"`, "http.url", "scheme must be http or https", `"ftp"`}},
		{"http url empty", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{}}, []string{"http.url: empty"}},
		{"http url no host", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "http:///x"}}, []string{"http.url", "has no host"}},
		{"http status", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "http://h/", ExpectStatus: 42}},
			[]string{"http.expect_status: 42 is not an HTTP status (100..599)"}},
		{"http timeout too long", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "http://h/", Timeout: config.Duration(2 * time.Minute)}},
			[]string{"http.timeout: 2m0s is over the maximum of 1m0s"}},
		{"http negative latency", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "http://h/", MaxLatency: config.Duration(-time.Second)}},
			[]string{"http.max_latency: -1s is negative"}},
		{"http latency over timeout", experiment.Probe{Name: "p", HTTP: &experiment.HTTPProbe{URL: "http://h/", MaxLatency: config.Duration(6 * time.Second)}},
			[]string{"http.max_latency: 6s is over http.timeout (5s)"}},
		{"prometheus url", experiment.Probe{Name: "p", Prometheus: &experiment.PrometheusProbe{URL: "127.0.0.1:9090", Query: "up"}},
			[]string{"prometheus.url"}},
		{"prometheus no query", experiment.Probe{Name: "p", Prometheus: &experiment.PrometheusProbe{URL: "http://h:9090", Query: "  "}},
			[]string{"prometheus.query: empty"}},
		{"prometheus min over max", experiment.Probe{Name: "p", Prometheus: &experiment.PrometheusProbe{URL: "http://h:9090", Query: "up", Min: ptr(2), Max: ptr(1)}},
			[]string{"prometheus.min: 2 is above max 1"}},
		{"every problem listed", experiment.Probe{Interval: config.Duration(time.Millisecond), HTTP: &experiment.HTTPProbe{URL: "file:///etc/passwd", ExpectStatus: 1000}},
			[]string{"name: empty", "interval: 1ms", "http.url", "http.expect_status: 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tt.probe, nil)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.probe, p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestNew_Defaults checks the defaults New fills in.
func TestNew_Defaults(t *testing.T) {
	t.Parallel()
	p, err := New(experiment.Probe{Name: "web", HTTP: &experiment.HTTPProbe{URL: "https://127.0.0.1/"}}, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	h := p.(*httpProber)
	if p.Name() != "web" || p.Interval() != DefaultInterval || h.status != 200 || h.timeout != DefaultHTTPTimeout || h.maxLatency != 0 {
		t.Errorf("New() = name %q interval %v status %d timeout %v max_latency %v; want web, %v, 200, %v, 0",
			p.Name(), p.Interval(), h.status, h.timeout, h.maxLatency, DefaultInterval, DefaultHTTPTimeout)
	}
	tr := h.client.Transport.(*http.Transport)
	if tr.Proxy != nil || !tr.DisableKeepAlives {
		t.Errorf("the HTTP probe's transport has Proxy set %v, DisableKeepAlives %v; want no proxy and no keep-alives", tr.Proxy != nil, tr.DisableKeepAlives)
	}
}

// TestNew_HostNeedsAgents checks that New sends host probes to NewHost.
func TestNew_HostNeedsAgents(t *testing.T) {
	t.Parallel()
	_, err := New(experiment.Probe{Name: "cpu", Host: &experiment.HostProbe{Target: "web", Metric: "cpu_percent", Max: ptr(90)}}, nil)
	if !errors.Is(err, ErrHostNeedsAgents) {
		t.Errorf("New(host probe) error = %v, want ErrHostNeedsAgents", err)
	}
}
