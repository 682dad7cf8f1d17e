package experiment

import (
	"time"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
)

// Bounds of an experiment file. They keep one experiment small enough
// to review by eye and to hold in one raft entry; docs/experiments.md
// lists them beside each field.
const (
	// MaxNameLen bounds the experiment's, targets', steps' and probes'
	// names, which are made of [a-z0-9-].
	MaxNameLen = 64
	// MaxHypothesis and MaxOwner bound the free texts.
	MaxHypothesis = 1024
	MaxOwner      = 256

	// MaxTargetAgents bounds the agents one target may choose: the
	// runner records each chosen agent, and refuses a larger choice.
	MaxTargetAgents = 500

	// MaxTargets, MaxSteps and MaxProbes bound the lists.
	MaxTargets = 16
	MaxSteps   = 64
	MaxProbes  = 32

	// MaxTimeline bounds the end of the last step, counted from the
	// start: the longest any single fault may live (faultspec's bound).
	MaxTimeline = faultspec.MaxDuration
	// MinStepDuration and MaxStepDuration bound a step's duration, which
	// becomes its fault's.
	MinStepDuration = faultspec.MinDuration
	MaxStepDuration = faultspec.MaxDuration

	// MaxRecovery bounds Recovery.
	MaxRecovery = time.Hour

	// MinInterval and MaxInterval bound a probe's interval. Below 100ms
	// a probe would load the service it watches; above 5m it could miss
	// a whole step.
	MinInterval = 100 * time.Millisecond
	MaxInterval = 5 * time.Minute
	// MaxHTTPTimeout bounds an HTTP probe's timeout (and so its
	// max_latency).
	MaxHTTPTimeout = time.Minute

	// MaxURL and MaxQuery bound a probe's URL and PromQL query.
	MaxURL   = 2048
	MaxQuery = 4096
)

// Defaults filled in by Parse (and Default) where the file says nothing.
const (
	DefaultRecovery     = 30 * time.Second
	DefaultInterval     = time.Second
	DefaultExpectStatus = 200
	DefaultHTTPTimeout  = 5 * time.Second
)

// HostMetrics are the metrics a host probe may watch, as the agents
// report them in their heartbeats.
var HostMetrics = []string{
	"cpu_percent",
	"memory_used_percent",
	"load1",
	"disk_used_percent",
	"disk_io_bytes_per_second",
	"network_bytes_per_second",
}
