package report

import (
	"time"
)

// FormatVersion is the version of the JSON form of Report. A reader that
// meets a higher version still decodes what it knows: fields are only
// ever added.
const FormatVersion = 1

// State is how an experiment ended.
type State string

// The states a finished experiment can be in.
const (
	// StateCompleted: every step ran its course and the experiment
	// ended on its own; the verdicts say whether the hypothesis held.
	StateCompleted State = "COMPLETED"
	// StateAborted: an abort condition held (or someone aborted it, or
	// the fleet was halted) and every fault was taken back early.
	StateAborted State = "ABORTED"
	// StateRefused: the experiment never started, because the steady
	// state did not hold or the error budget was below its floor.
	StateRefused State = "REFUSED"
	// StateFailed: the experiment could not be carried out (a fault
	// group could not be applied, the controller lost track of it).
	StateFailed State = "FAILED"
	// StateRunning is the state of a report taken while the experiment
	// still runs (turbctl experiment report on a running experiment).
	StateRunning State = "RUNNING"
)

// Outcome is one verdict.
type Outcome string

// The verdict outcomes.
const (
	Pass Outcome = "PASS"
	Fail Outcome = "FAIL"
	// NotRun is the verdict of a phase the experiment never reached
	// (during and after of a refused experiment).
	NotRun Outcome = "NOT_RUN"
)

// Report is everything an experiment left behind: what was asked, what
// was hit and when, what was measured, and the verdicts. Times are UTC.
type Report struct {
	// Version is FormatVersion when the report was made.
	Version int `json:"version"`

	ID         string `json:"id"`
	Name       string `json:"name"`
	Hypothesis string `json:"hypothesis,omitempty"`
	Owner      string `json:"owner,omitempty"`
	// StartedBy is the identity that started the experiment.
	StartedBy string `json:"started_by,omitempty"`
	// Seed is the seed the targets were chosen with: the one the file
	// gave, or the one the controller drew, so a run can be repeated.
	Seed uint64 `json:"seed"`

	State State `json:"state"`
	// Verdicts of the steady state before, of the abort conditions
	// during, and of the recovery after the faults.
	Before Verdict `json:"before"`
	During Verdict `json:"during"`
	After  Verdict `json:"after"`

	// StartedAt is when the runner began (the first "before" probe);
	// EndedAt when it finished, zero while it runs.
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`

	// Abort says why an ABORTED experiment stopped; nil otherwise.
	Abort *Abort `json:"abort,omitempty"`

	Targets []Target      `json:"targets"`
	Steps   []Step        `json:"steps"`
	Probes  []ProbeSeries `json:"probes"`
	// Hosts are the host metrics of every chosen agent, one entry per
	// agent and target, in the order of Targets then agents.
	Hosts []HostSeries `json:"hosts,omitempty"`
	// Events is the timeline, in time order.
	Events []Event `json:"events"`
	// DroppedEvents counts the events the controller did not keep (it
	// bounds what an experiment may store); they are not in Events.
	DroppedEvents int `json:"dropped_events,omitempty"`
}

// Verdict is the result of one phase of the experiment.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Reason says why, in a sentence: the probe that failed and its
	// value, or how long the recovery took.
	Reason string `json:"reason,omitempty"`
}

// Abort is the reason an experiment was aborted.
type Abort struct {
	// Reason in words: "probe checkout-p99 above its max", "aborted by
	// alice", "fleet halted".
	Reason string `json:"reason"`
	// Probe, Value and SampleAt name the failing sample when a probe
	// caused the abort; Probe is empty otherwise.
	Probe    string    `json:"probe,omitempty"`
	Value    Float     `json:"value"`
	SampleAt time.Time `json:"sample_at,omitzero"`
	// RevertedAt is when the last fault of the experiment was confirmed
	// reverted; zero when that is not known (an agent went silent).
	RevertedAt time.Time `json:"reverted_at,omitzero"`
}

// Target is one named slice of the fleet and the agents chosen for it.
type Target struct {
	Name     string   `json:"name"`
	Selector string   `json:"selector,omitempty"`
	Agents   []string `json:"agents"`
}

// Step is one step of the timeline: a fault group applied to a target.
type Step struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// Kind is the fault kind (cpu, memory, disk, network, partition).
	Kind string `json:"kind"`
	// Fault is a one-line summary of the fault's parameters.
	Fault string `json:"fault"`
	// PlannedStart and PlannedDuration are the step's place on the
	// timeline as the file asked: PlannedStart counts from the start of
	// the fault phase (with After chains already added up).
	PlannedStart    time.Duration `json:"planned_start"`
	PlannedDuration time.Duration `json:"planned_duration"`
	// GroupID is the fault group the step became; empty if it never ran.
	GroupID string `json:"group_id,omitempty"`
	// Start and End are the step's actual window: from the group's
	// creation to the last member's confirmed end. Zero Start: the step
	// never ran; zero End: it had not ended (or its end is unknown).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Agents is each member fault of the group and how it ended.
	Agents []StepAgent `json:"agents,omitempty"`
}

// StepAgent is one member fault of a step's group.
type StepAgent struct {
	Agent   string `json:"agent"`
	FaultID string `json:"fault_id,omitempty"`
	// State is the fault's final state as the controller knows it
	// (REVERTED, EXPIRED, FAILED, UNCONFIRMED, …).
	State string    `json:"state"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Err is the agent's reason when the fault failed or was refused.
	Err string `json:"err,omitempty"`
}

// The probe kinds.
const (
	KindHTTP        = "http"
	KindPrometheus  = "prometheus"
	KindHost        = "host"
	KindErrorBudget = "error_budget"
)

// ProbeSeries is every sample one probe took during the experiment.
type ProbeSeries struct {
	Name string `json:"name"`
	// Kind is one of KindHTTP, KindPrometheus, KindHost, KindErrorBudget.
	Kind string `json:"kind"`
	// Subject is what the probe looks at, for people: the URL, the
	// query, or "target web: cpu_percent".
	Subject string `json:"subject,omitempty"`
	// Unit of the values ("s" for an HTTP latency, "%", or empty).
	Unit string `json:"unit,omitempty"`
	// Min and Max are the thresholds: a value outside [Min, Max] fails.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// SteadyState and Abort say which roles the probe had: part of the
	// steady state (before and after), an abort condition (during).
	SteadyState bool     `json:"steady_state,omitempty"`
	Abort       bool     `json:"abort,omitempty"`
	Samples     []Sample `json:"samples"`
	// Dropped counts the oldest samples the controller did not keep (it
	// bounds each series); they are not in Samples.
	Dropped int `json:"dropped,omitempty"`
}

// Sample is one measurement of a probe.
type Sample struct {
	At time.Time `json:"at"`
	// Value is the measured value (an HTTP probe's latency in
	// milliseconds); NaN when nothing was measured.
	Value Float `json:"value"`
	Pass  bool  `json:"pass"`
	// Err is why the sample failed: no value could be had (a timeout,
	// a refused connection, a query that returned no series; Value is
	// then NaN) or the value broke a bound.
	Err string `json:"err,omitempty"`
	// Detail is a short account of the sample for people: what was
	// seen, or the kind of failure.
	Detail string `json:"detail,omitempty"`
}

// HostSeries is the host metrics of one chosen agent over the
// experiment, as its heartbeats reported them.
type HostSeries struct {
	Agent  string `json:"agent"`
	Target string `json:"target"`
	// Metrics maps a metric name (cpu_percent, memory_used_percent,
	// load1, disk_used_percent, disk_io_bytes_per_second,
	// network_bytes_per_second) to its points in time order.
	Metrics map[string][]Point `json:"metrics"`
}

// Point is one value of a host metric.
type Point struct {
	At    time.Time `json:"at"`
	Value Float     `json:"value"`
}

// Event is one line of the experiment's timeline.
type Event struct {
	At time.Time `json:"at"`
	// Type classifies the event for display ("abort" and "failed" are
	// shown as alarms); free text, may be empty.
	Type string `json:"type,omitempty"`
	Text string `json:"text"`
}

// Duration is how long the experiment ran: from StartedAt to EndedAt,
// or to the last thing recorded while it still runs.
func (r *Report) Duration() time.Duration {
	if r.StartedAt.IsZero() {
		return 0
	}
	end := r.EndedAt
	if end.IsZero() {
		end = r.lastRecorded()
	}
	if end.Before(r.StartedAt) {
		return 0
	}
	return end.Sub(r.StartedAt)
}

// lastRecorded is the latest time anywhere in the report.
func (r *Report) lastRecorded() time.Time {
	var last time.Time
	see := func(t time.Time) {
		if t.After(last) {
			last = t
		}
	}
	see(r.StartedAt)
	see(r.EndedAt)
	for _, s := range r.Steps {
		see(s.Start)
		see(s.End)
	}
	for _, p := range r.Probes {
		for _, s := range p.Samples {
			see(s.At)
		}
	}
	for _, h := range r.Hosts {
		for _, pts := range h.Metrics {
			for _, p := range pts {
				see(p.At)
			}
		}
	}
	for _, e := range r.Events {
		see(e.At)
	}
	return last
}
