package probe

import (
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
)

// series is a tiny real HostSource: the latest value per agent and metric,
// as heartbeats would leave it.
type series struct {
	mu     sync.Mutex
	latest map[[2]string]point
}

type point struct {
	v  float64
	at time.Time
}

func newSeries() *series { return &series{latest: map[[2]string]point{}} }

// report records a heartbeat's value, taken now.
func (s *series) report(agent, metric string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest[[2]string{agent, metric}] = point{v, time.Now()}
}

func (s *series) Latest(agent, metric string) (float64, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.latest[[2]string{agent, metric}]
	return p.v, p.at, ok
}

func cpuProbe(min, max *float64) experiment.Probe {
	return experiment.Probe{
		Name: "cpu", Interval: config.Duration(time.Second),
		Host: &experiment.HostProbe{Target: "web", Metric: "cpu_percent", Min: min, Max: max},
	}
}

// TestHost_Sample walks a host probe through pass, breach, missing and
// stale values on a fake clock.
func TestHost_Sample(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newSeries()
		p, err := NewHost(cpuProbe(nil, ptr(90)), []string{"a1", "a2", "a3"}, src)
		if err != nil {
			t.Fatalf("NewHost() = %v", err)
		}
		src.report("a1", "cpu_percent", 10)
		src.report("a2", "cpu_percent", 40)
		// a3 has not reported yet.
		s := p.Sample(t.Context())
		if s.Pass || s.Detail != FailNoData || s.Err != "agent a3: no cpu_percent reported" {
			t.Errorf("Sample() with a silent agent = %+v, want a no-data failure naming a3", s)
		}

		src.report("a3", "cpu_percent", 20)
		s = p.Sample(t.Context())
		if !s.Pass || s.Value != 40 || s.Detail != "cpu_percent 40 on a2 (3 agents)" || !s.At.Equal(time.Now()) {
			t.Errorf("Sample() = %+v, want a pass with the highest value, 40 on a2", s)
		}

		src.report("a3", "cpu_percent", 95.5)
		s = p.Sample(t.Context())
		if s.Pass || s.Detail != FailBounds || s.Value != 95.5 || s.Err != "agent a3: cpu_percent value 95.5 above max 90" {
			t.Errorf("Sample() with a3 at 95.5 = %+v, want a bounds failure naming a3", s)
		}

		// Exactly StaleIntervals intervals old is still fresh; a moment
		// more is stale. a2 falls silent; the others keep reporting.
		src.report("a2", "cpu_percent", 40)
		time.Sleep(StaleIntervals * time.Second)
		src.report("a1", "cpu_percent", 10)
		src.report("a3", "cpu_percent", 30)
		if s = p.Sample(t.Context()); !s.Pass {
			t.Errorf("Sample() with a2 exactly %d intervals old = %+v, want a pass", StaleIntervals, s)
		}
		time.Sleep(time.Millisecond)
		s = p.Sample(t.Context())
		want := "agent a2: latest cpu_percent is 3.001s old, over 3 intervals of 1s: stale"
		if s.Pass || s.Detail != FailStale || s.Err != want {
			t.Errorf("Sample() with a2 silent = %+v, want a stale failure %q", s, want)
		}
	})
}

// pacedSeries is a series whose agents report every `every`, as a
// leader that slowed a large fleet's heartbeats says (ReportPacer).
type pacedSeries struct {
	*series
	every time.Duration
}

func (p pacedSeries) ReportInterval() time.Duration { return p.every }

// An agent that reports every 5 s (heartbeat pacing) is not stale to a
// probe sampling every second until three of its own intervals passed:
// a large fleet must not abort every experiment for being large.
func TestHost_StaleByTheSlowerOfProbeAndReports(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := pacedSeries{newSeries(), 5 * time.Second}
		p, err := NewHost(cpuProbe(nil, ptr(90)), []string{"a1"}, src)
		if err != nil {
			t.Fatalf("NewHost() = %v", err)
		}
		src.report("a1", "cpu_percent", 10)
		time.Sleep(4 * time.Second)
		if s := p.Sample(t.Context()); !s.Pass {
			t.Errorf("Sample() 4s after a report every 5s = %+v, want a pass", s)
		}
		time.Sleep(11*time.Second + time.Millisecond)
		s := p.Sample(t.Context())
		want := "agent a1: latest cpu_percent is 15.001s old, over 3 intervals of 5s: stale"
		if s.Pass || s.Err != want {
			t.Errorf("Sample() 15.001s after the report = %+v, want %q", s, want)
		}
	})
}

// TestHost_MinBoundAndManyProblems checks a lower bound (the value shown
// is then the lowest) and that a failing sample names at most maxProblems
// agents.
func TestHost_MinBoundAndManyProblems(t *testing.T) {
	t.Parallel()
	src := newSeries()
	agents := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7"}
	p, err := NewHost(cpuProbe(ptr(5), nil), agents, src)
	if err != nil {
		t.Fatalf("NewHost() = %v", err)
	}
	for i, a := range agents {
		src.report(a, "cpu_percent", float64(10+i))
	}
	if s := p.Sample(t.Context()); !s.Pass || s.Value != 10 {
		t.Errorf("Sample() = %+v, want a pass showing the lowest value, 10", s)
	}
	for _, a := range agents {
		src.report(a, "cpu_percent", 1)
	}
	s := p.Sample(t.Context())
	if s.Pass || strings.Count(s.Err, "below min 5") != maxProblems || !strings.HasSuffix(s.Err, "; and 2 more") {
		t.Errorf("Sample() with 7 agents below min = %+v, want %d named and \"and 2 more\"", s, maxProblems)
	}
}

// TestNewHost_RefusesBadSpecs checks NewHost's rules.
func TestNewHost_RefusesBadSpecs(t *testing.T) {
	t.Parallel()
	src := newSeries()
	tests := []struct {
		name   string
		probe  experiment.Probe
		agents []string
		src    HostSource
		want   []string
	}{
		{"unknown metric", experiment.Probe{Name: "h", Host: &experiment.HostProbe{Target: "web", Metric: "cpu", Max: ptr(1)}},
			[]string{"a"}, src, []string{`host.metric: "cpu" is not one of cpu_percent, memory_used_percent`}},
		{"no target", experiment.Probe{Name: "h", Host: &experiment.HostProbe{Metric: "load1", Max: ptr(1)}},
			[]string{"a"}, src, []string{"host.target: empty"}},
		{"no bounds", experiment.Probe{Name: "h", Host: &experiment.HostProbe{Target: "web", Metric: "load1"}},
			[]string{"a"}, src, []string{"neither min nor max"}},
		{"min over max", cpuProbe(ptr(50), ptr(10)), []string{"a"}, src, []string{"host.min: 50 is above max 10"}},
		{"no agents", cpuProbe(nil, ptr(90)), nil, src, []string{`host.target: target "web" chose no agents`}},
		{"empty agent", cpuProbe(nil, ptr(90)), []string{"a", ""}, src, []string{"empty agent ID"}},
		{"no source", cpuProbe(nil, ptr(90)), []string{"a"}, nil, []string{"no host metric source"}},
		{"not a host probe", experiment.Probe{Name: "h", HTTP: &experiment.HTTPProbe{URL: "http://h/"}}, []string{"a"}, src,
			[]string{"host: not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewHost(tt.probe, tt.agents, tt.src)
			if err == nil {
				t.Fatalf("NewHost() = %v, nil; want an error", p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewHost() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}
