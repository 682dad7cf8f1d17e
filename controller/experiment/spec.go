// Package experiment holds the experiment file: a chaos experiment stated
// the way SREs practise it — a hypothesis, a steady state in terms of
// probes (HTTP, Prometheus, the targets' host metrics), a bounded slice of
// the fleet, a timeline of fault groups, and the conditions that abort it.
//
// The file is YAML, read strictly (an unknown field is an error). Its
// field reference is docs/experiments.md. This file holds the types only;
// the rules of a valid file are in validate.go.
package experiment

import (
	"encoding/json"

	"github.com/turbulence-sre/turbulence/internal/config"
)

// Spec is one experiment file.
type Spec struct {
	// Name names the experiment in lists and reports: 1..64 characters
	// of [a-z0-9-].
	Name string `json:"name"`
	// Hypothesis states, in a sentence, what is expected to hold while the
	// faults run.
	Hypothesis string `json:"hypothesis"`
	// Owner is who answers for the experiment (a team or a person).
	Owner string `json:"owner"`
	// Seed makes the choice of agents repeatable; 0 lets the controller
	// pick one, which the report records.
	Seed uint64 `json:"seed,omitempty"`

	// Targets are named slices of the fleet, each chosen once, when the
	// experiment starts; steps and host probes refer to them by name.
	Targets map[string]Target `json:"targets"`
	// Steps are the faults, on a timeline counted from the start.
	Steps []Step `json:"steps"`
	// Probes are every measurement of the experiment, referred to by name
	// from SteadyState and AbortWhen.
	Probes []Probe `json:"probes"`

	// SteadyState names the probes that must all pass before the first
	// step (or the experiment does not start) and again after the last
	// fault ended, within Recovery (or its verdict is FAILED).
	SteadyState []string `json:"steady_state"`
	// AbortWhen names the probes watched while faults run: the first
	// failing sample of any of them aborts the experiment, which reverts
	// every fault it applied.
	AbortWhen []string `json:"abort_when,omitempty"`
	// Recovery is how long after the last fault ended the steady state
	// may take to hold again. Default 30s.
	Recovery config.Duration `json:"recovery,omitempty"`

	// ErrorBudget, when set, is checked before the start: below its floor
	// the experiment refuses to start.
	ErrorBudget *ErrorBudget `json:"error_budget,omitempty"`
}

// Target is a slice of the fleet, chosen like a fault group
// (docs/groups.md): the agents matching Selector (and Agents, when
// given), then Count or Percent of the eligible ones, at least Min.
type Target struct {
	Selector string   `json:"selector,omitempty"`
	Agents   []string `json:"agents,omitempty"`
	Count    uint32   `json:"count,omitempty"`
	Percent  float64  `json:"percent,omitempty"`
	Min      uint32   `json:"min,omitempty"`
}

// Step is one fault applied as a fault group to a target, from Start for
// Duration. Steps whose windows overlap run in parallel; After chains a
// step behind another (a sequence).
type Step struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// Start is the step's offset from the experiment's start. With After,
	// it counts from the end of the named step instead (a sequence).
	Start config.Duration `json:"start,omitempty"`
	After string          `json:"after,omitempty"`
	// Duration is how long the fault lives; it becomes the fault spec's
	// duration, so the agents' own kill switch ends it.
	Duration config.Duration `json:"duration"`
	// Fault is the fault spec in the protobuf JSON form of
	// turbulence.v1.FaultSpec without its duration, for example
	// {"cpu": {"cores": 1, "load_percent": 50}}. It is validated with
	// internal/faultspec, like every other fault.
	Fault json.RawMessage `json:"fault"`
}

// Probe is one measurement, sampled every Interval. Exactly one of HTTP,
// Prometheus and Host is set.
type Probe struct {
	Name string `json:"name"`
	// Interval between samples; default 1s, at least 100ms.
	Interval   config.Duration  `json:"interval,omitempty"`
	HTTP       *HTTPProbe       `json:"http,omitempty"`
	Prometheus *PrometheusProbe `json:"prometheus,omitempty"`
	Host       *HostProbe       `json:"host,omitempty"`
}

// HTTPProbe passes when a GET of URL answers ExpectStatus within
// MaxLatency.
type HTTPProbe struct {
	// URL is http:// or https://.
	URL string `json:"url"`
	// ExpectStatus defaults to 200.
	ExpectStatus int `json:"expect_status,omitempty"`
	// MaxLatency: a slower answer fails the sample. Default: no bound
	// beyond Timeout.
	MaxLatency config.Duration `json:"max_latency,omitempty"`
	// Timeout of one request; default 5s. A timeout fails the sample.
	Timeout config.Duration `json:"timeout,omitempty"`
}

// PrometheusProbe passes when the instant query's single value is within
// [Min, Max] (either bound may be absent).
type PrometheusProbe struct {
	// URL of the Prometheus server (its HTTP API is URL/api/v1/query).
	URL   string   `json:"url"`
	Query string   `json:"query"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
}

// HostProbe passes when a host metric of every agent of Target, as the
// agents report it in their heartbeats, is within [Min, Max].
type HostProbe struct {
	Target string `json:"target"`
	// Metric is one of cpu_percent, memory_used_percent, load1,
	// disk_used_percent, disk_io_bytes_per_second,
	// network_bytes_per_second.
	Metric string   `json:"metric"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
}

// ErrorBudget guards the start: the Prometheus query returns the
// fraction of the service's error budget that remains (0..1); below
// MinRemaining the experiment refuses to start. With BurnRateQuery and
// MaxBurnRate set, the experiment also aborts while running when the
// burn rate passes MaxBurnRate.
type ErrorBudget struct {
	URL           string  `json:"url"`
	Query         string  `json:"query"`
	MinRemaining  float64 `json:"min_remaining"`
	BurnRateQuery string  `json:"burn_rate_query,omitempty"`
	MaxBurnRate   float64 `json:"max_burn_rate,omitempty"`
}
