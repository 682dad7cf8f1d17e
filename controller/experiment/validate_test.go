package experiment

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/turbulence-sre/turbulence/internal/config"
)

// validSpec parses testdata/valid.yaml.
func validSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := Parse([]byte(readValid(t)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ptr(v float64) *float64 { return &v }

func TestValidate_Rules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want []string
	}{
		// Names.
		{"name required", func(s *Spec) { s.Name = "" },
			[]string{"name: is required: 1 to 64 characters of a-z, 0-9 and -"}},
		{"name too long", func(s *Spec) { s.Name = strings.Repeat("a", 65) },
			[]string{"name: is 65 characters, above the limit of 64"}},
		{"name charset", func(s *Spec) { s.Name = "Web_CPU" },
			[]string{`name: "Web_CPU" may hold only a-z, 0-9 and -`}},
		{"hypothesis required", func(s *Spec) { s.Hypothesis = "  " },
			[]string{"hypothesis: is required (at most 1024 bytes)"}},
		{"owner too long", func(s *Spec) { s.Owner = strings.Repeat("o", 257) },
			[]string{"owner: is 257 bytes, above the limit of 256 bytes"}},
		{"target name charset", func(s *Spec) { s.Targets["Web"] = s.Targets["web"] },
			[]string{`targets.Web: "Web" may hold only a-z, 0-9 and -`}},
		{"step name duplicate", func(s *Spec) { s.Steps[1].Name = "burn"; s.Steps[1].After = "" },
			[]string{`steps[1].name: "burn" is already the name of steps[0]`}},
		{"probe name duplicate", func(s *Spec) { s.Probes[1].Name = "home" },
			[]string{`probes[1].name: "home" is already the name of probes[0]`, `abort_when[1]: names no probe: "web-cpu"`}},

		// Targets and their caps.
		{"no targets", func(s *Spec) { s.Targets = nil; s.Steps = s.Steps[:0]; s.Probes = s.Probes[:1]; s.AbortWhen = nil },
			[]string{"targets: must hold at least one target", "steps: must hold at least one step"}},
		{"too many targets", func(s *Spec) {
			for i := range MaxTargets {
				s.Targets[strings.Repeat("t", i+1)] = Target{Selector: "role=db"}
			}
		}, []string{"targets: holds 17 targets, above the limit of 16"}},
		{"target selects the whole fleet", func(s *Spec) { s.Targets["web"] = Target{Percent: 10} },
			[]string{"targets.web: needs a selector or agents: an empty selector would match the whole fleet"}},
		{"selector does not parse", func(s *Spec) { s.Targets["web"] = Target{Selector: "role in (a", Percent: 10} },
			[]string{`targets.web.selector: "role in (a" is not a label selector: unable to parse requirement: found '', expected: ',' or ')'`}},
		{"count and percent", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Count: 2, Percent: 10} },
			[]string{"targets.web: sets both count and percent: at most one of them"}},
		{"percent above 100", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Percent: 100.5} },
			[]string{"targets.web.percent: must be above 0 and at most 100, got 100.5"}},
		{"percent negative", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Percent: -1} },
			[]string{"targets.web.percent: must be above 0 and at most 100, got -1"}},
		{"percent NaN", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Percent: math.NaN()} },
			[]string{"targets.web.percent: must be above 0 and at most 100, got NaN"}},
		{"count above the bound", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Count: 501} },
			[]string{"targets.web.count: must be at most 500, got 501"}},
		{"min above count", func(s *Spec) { s.Targets["web"] = Target{Selector: "role=web", Count: 2, Min: 3} },
			[]string{"targets.web.min: must be at most count (2), got 3"}},
		{"min above the agents listed", func(s *Spec) { s.Targets["web"] = Target{Agents: []string{"a", "b"}, Min: 3} },
			[]string{"targets.web.min: must be at most the 2 agents listed, got 3"}},
		{"agent listed twice", func(s *Spec) { s.Targets["web"] = Target{Agents: []string{"a", "a", ""}} },
			[]string{`targets.web.agents[1]: lists agent "a" twice`, "targets.web.agents[2]: is empty"}},

		// Steps.
		{"step target unknown", func(s *Spec) { s.Steps[0].Target = "db" },
			[]string{`steps[0].target: names no target: "db"`}},
		{"after unknown", func(s *Spec) { s.Steps[1].After = "warm-up" },
			[]string{`steps[1].after: names no step: "warm-up"`}},
		{"after itself", func(s *Spec) { s.Steps[0].After = "burn" },
			[]string{"steps[0].after: makes a cycle: burn after burn"}},
		{"after cycle", func(s *Spec) { s.Steps[0].After = "burn-more" },
			[]string{"steps[0].after: makes a cycle: burn after burn-more after burn"}},
		{"start negative", func(s *Spec) { s.Steps[0].Start = config.Duration(-time.Second) },
			[]string{"steps[0].start: must be between 0s and 24h0m0s, got -1s"}},
		{"duration zero", func(s *Spec) { s.Steps[0].Duration = 0 },
			[]string{"steps[0].duration: must be between 1s and 24h0m0s, got 0s"}},
		{"duration above a day", func(s *Spec) { s.Steps[1].Duration = config.Duration(25 * time.Hour) },
			[]string{"steps[1].duration: must be between 1s and 24h0m0s, got 25h0m0s", "steps[1]: ends 25h2m10s after the start, above the limit of 24h0m0s for the whole timeline"}},
		{"timeline above a day", func(s *Spec) { s.Steps[1].Start = config.Duration(23*time.Hour + 59*time.Minute) },
			[]string{"steps[1]: ends 24h2m10s after the start, above the limit of 24h0m0s for the whole timeline"}},
		{"too many steps", func(s *Spec) {
			for range MaxSteps {
				s.Steps = append(s.Steps, Step{Name: fmt.Sprintf("x%d", len(s.Steps)), Target: "web", Duration: s.Steps[0].Duration, Fault: s.Steps[0].Fault})
			}
		}, []string{"steps: holds 66 steps, above the limit of 64"}},
		{"fault missing", func(s *Spec) { s.Steps[0].Fault = nil },
			[]string{`steps[0].fault: is required: one fault kind, e.g. {"cpu": {"cores": 1, "load_percent": 50}}`}},
		{"fault unknown field", func(s *Spec) { s.Steps[0].Fault = json.RawMessage(`{"cpu": {"cores": 1, "load": 50}}`) },
			[]string{`steps[0].fault: is not a fault spec: proto: (line 1:22): unknown field "load"`}},
		{"fault out of bounds", func(s *Spec) { s.Steps[0].Fault = json.RawMessage(`{"cpu": {"cores": 1, "load_percent": 150}}`) },
			[]string{"steps[0].fault.cpu.load_percent: must be between 1 and 100, got 150"}},
		{"fault with its own duration", func(s *Spec) {
			s.Steps[0].Fault = json.RawMessage(`{"duration": "5s", "cpu": {"cores": 1, "load_percent": 50}}`)
		},
			[]string{"steps[0].fault.duration: must not be set: the step's duration is the fault's"}},
		{"fault without a kind", func(s *Spec) { s.Steps[0].Fault = json.RawMessage(`{}`) },
			[]string{"steps[0].fault.kind: one of cpu, memory, disk_fill, disk_io, network, partition is required"}},

		// Probes.
		{"no probes", func(s *Spec) { s.Probes = nil },
			[]string{"probes: must hold at least one probe (steady_state needs one)", `steady_state[0]: names no probe: "home"`, `abort_when[0]: names no probe: "home"`, `abort_when[1]: names no probe: "web-cpu"`}},
		{"probe with two kinds", func(s *Spec) {
			s.Probes[1].Prometheus = &PrometheusProbe{URL: "http://p:9090", Query: "up", Max: ptr(1)}
		},
			[]string{"probes[1]: must set exactly one of http, prometheus and host, got 2"}},
		{"probe with no kind", func(s *Spec) { s.Probes[1].Host = nil },
			[]string{"probes[1]: must set exactly one of http, prometheus and host, got 0"}},
		{"interval too short", func(s *Spec) { s.Probes[0].Interval = config.Duration(50 * time.Millisecond) },
			[]string{"probes[0].interval: must be between 100ms and 5m0s, got 50ms"}},
		{"interval too long", func(s *Spec) { s.Probes[0].Interval = config.Duration(6 * time.Minute) },
			[]string{"probes[0].interval: must be between 100ms and 5m0s, got 6m0s"}},
		{"url not http", func(s *Spec) { s.Probes[0].HTTP.URL = "ftp://example.test/x" },
			[]string{`probes[0].http.url: must be an http:// or https:// URL, got scheme "ftp"`}},
		{"url without host", func(s *Spec) { s.Probes[0].HTTP.URL = "http:///x" },
			[]string{"probes[0].http.url: has no host"}},
		{"url missing", func(s *Spec) { s.Probes[0].HTTP.URL = "" },
			[]string{"probes[0].http.url: is required: an http:// or https:// URL"}},
		{"expect status not HTTP", func(s *Spec) { s.Probes[0].HTTP.ExpectStatus = 700 },
			[]string{"probes[0].http.expect_status: must be an HTTP status from 100 to 599, got 700"}},
		{"timeout too long", func(s *Spec) { s.Probes[0].HTTP.Timeout = config.Duration(2 * time.Minute) },
			[]string{"probes[0].http.timeout: must be above 0 and at most 1m0s, got 2m0s"}},
		{"max latency above timeout", func(s *Spec) { s.Probes[0].HTTP.MaxLatency = config.Duration(6 * time.Second) },
			[]string{"probes[0].http.max_latency: must be between 0s (no bound but the timeout) and the timeout (5s), got 6s"}},
		{"prometheus without bounds or query", func(s *Spec) {
			s.Probes[1].Host = nil
			s.Probes[1].Prometheus = &PrometheusProbe{URL: "https://prom:9090"}
		},
			[]string{"probes[1].prometheus.query: is required: a PromQL expression", "probes[1].prometheus: must set min, max or both"}},
		{"prometheus min above max", func(s *Spec) {
			s.Probes[1].Host = nil
			s.Probes[1].Prometheus = &PrometheusProbe{URL: "https://prom:9090", Query: "up", Min: ptr(2), Max: ptr(1)}
		}, []string{"probes[1].prometheus.min: must be at most max (1), got 2"}},
		{"prometheus bound infinite", func(s *Spec) {
			s.Probes[1].Host = nil
			s.Probes[1].Prometheus = &PrometheusProbe{URL: "https://prom:9090", Query: "up", Max: ptr(math.Inf(1))}
		}, []string{"probes[1].prometheus.max: must be a finite number, got +Inf"}},
		{"host probe target and metric", func(s *Spec) { s.Probes[1].Host = &HostProbe{Target: "db", Metric: "cpu", Max: ptr(1)} },
			[]string{`probes[1].host.target: names no target: "db"`, `probes[1].host.metric: must be one of cpu_percent, memory_used_percent, load1, disk_used_percent, disk_io_bytes_per_second, network_bytes_per_second, got "cpu"`}},

		// Steady state, abort, recovery.
		{"steady state empty", func(s *Spec) { s.SteadyState = nil },
			[]string{"steady_state: must name at least one probe: without a steady state there is nothing to hold the experiment to"}},
		{"steady state unknown and twice", func(s *Spec) { s.SteadyState = []string{"home", "home", "latency"} },
			[]string{`steady_state[1]: names probe "home" twice`, `steady_state[2]: names no probe: "latency"`}},
		{"abort when unknown", func(s *Spec) { s.AbortWhen = []string{"nope"} },
			[]string{`abort_when[0]: names no probe: "nope"`}},
		{"recovery negative", func(s *Spec) { s.Recovery = config.Duration(-time.Second) },
			[]string{"recovery: must be above 0 and at most 1h0m0s, got -1s"}},
		{"recovery too long", func(s *Spec) { s.Recovery = config.Duration(2 * time.Hour) },
			[]string{"recovery: must be above 0 and at most 1h0m0s, got 2h0m0s"}},

		// Error budget.
		{"error budget floor zero", func(s *Spec) { s.ErrorBudget = &ErrorBudget{URL: "http://prom:9090", Query: "budget"} },
			[]string{"error_budget.min_remaining: must be above 0 and at most 1 (a fraction of the budget), got 0"}},
		{"error budget floor above 1", func(s *Spec) {
			s.ErrorBudget = &ErrorBudget{URL: "http://prom:9090", Query: "budget", MinRemaining: 1.5}
		},
			[]string{"error_budget.min_remaining: must be above 0 and at most 1 (a fraction of the budget), got 1.5"}},
		{"error budget burn rate without query", func(s *Spec) {
			s.ErrorBudget = &ErrorBudget{URL: "http://prom:9090", Query: "budget", MinRemaining: 0.5, MaxBurnRate: 2}
		}, []string{"error_budget.burn_rate_query: is required when max_burn_rate is set"}},
		{"error budget burn query without limit", func(s *Spec) {
			s.ErrorBudget = &ErrorBudget{URL: "file:///etc/passwd", Query: "budget", MinRemaining: 0.5, BurnRateQuery: "rate"}
		}, []string{`error_budget.url: must be an http:// or https:// URL, got scheme "file"`, "error_budget.max_burn_rate: must be above 0 when burn_rate_query is set, got 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := validSpec(t)
			tc.edit(s)
			if diff := cmp.Diff(tc.want, problems(t, s.Validate())); diff != "" {
				t.Errorf("Validate problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidate_DoesNotModify holds Validate to its word: it reads only.
func TestValidate_DoesNotModify(t *testing.T) {
	t.Parallel()
	s := validSpec(t)
	s.Steps[0].Fault = json.RawMessage(`{"cpu": {"cores": 1, "load_percent": 150}}`)
	before, _ := json.Marshal(s)
	_ = s.Validate()
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Errorf("Validate changed the spec:\nbefore %s\nafter  %s", before, after)
	}
}
