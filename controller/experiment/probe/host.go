package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// HostSource gives the latest value of a host metric as an agent reported
// it in its heartbeats. The controller's per-agent time series implements
// it; ok is false when the agent never reported that metric (or is not
// known at all). Latest must be safe to call from several goroutines.
type HostSource interface {
	Latest(agentID, metric string) (value float64, at time.Time, ok bool)
}

// ReportPacer is a HostSource that knows how often agents report now:
// the leader slows a large fleet's heartbeats (docs/design.md, "Heartbeat
// pacing"), and a value is only as fresh as the last report.
type ReportPacer interface {
	ReportInterval() time.Duration
}

// StaleIntervals is how many intervals old an agent's latest value may
// be before a host probe calls it stale and fails: an agent that stopped
// reporting is not in a steady state anyone can see. The interval is the
// probe's, or the agents' report interval when that is longer.
const StaleIntervals = 3

// maxProblems caps how many agents a failing host sample names.
const maxProblems = 5

// hostProber is a host probe over a fixed set of agents.
type hostProber struct {
	name     string
	interval time.Duration
	metric   string
	bounds   bounds
	agents   []string
	src      HostSource
	now      func() time.Time // time.Now; tests in a synctest bubble use it as is
}

// NewHost builds the Prober of a host probe watching agentIDs — the
// agents its target chose when the experiment started — through src. It
// refuses a spec that breaks a rule, an empty agent list, and a nil
// source, naming the field and the limit.
func NewHost(p experiment.Probe, agentIDs []string, src HostSource) (Prober, error) {
	interval, err := checkCommon(p)
	errs := []error{err}
	if p.Host != nil {
		h := p.Host
		if h.Target == "" {
			errs = append(errs, errors.New("host.target: empty; name one of the experiment's targets"))
		}
		if !slices.Contains(experiment.HostMetrics, h.Metric) {
			errs = append(errs, fmt.Errorf("host.metric: %q is not one of %s", h.Metric, strings.Join(experiment.HostMetrics, ", ")))
		}
		if err := (bounds{min: h.Min, max: h.Max}).check(); err != nil {
			errs = append(errs, fmt.Errorf("host.%w", err))
		}
		if h.Min == nil && h.Max == nil {
			errs = append(errs, errors.New("host: neither min nor max is set, so every value would pass"))
		}
		if len(agentIDs) == 0 {
			errs = append(errs, fmt.Errorf("host.target: target %q chose no agents, so there is nothing to watch", h.Target))
		}
		for _, id := range agentIDs {
			if id == "" {
				errs = append(errs, fmt.Errorf("host.target: target %q has an empty agent ID", h.Target))
				break
			}
		}
	} else if err == nil {
		errs = append(errs, errors.New("host: not set; NewHost builds host probes only"))
	}
	if src == nil {
		errs = append(errs, errors.New("no host metric source to read the agents' values from"))
	}
	if err := joinProbe(p.Name, errs...); err != nil {
		return nil, err
	}
	return &hostProber{
		name: p.Name, interval: interval, metric: p.Host.Metric,
		bounds: bounds{min: p.Host.Min, max: p.Host.Max},
		agents: slices.Clone(agentIDs), src: src, now: time.Now,
	}, nil
}

func (h *hostProber) Name() string            { return h.name }
func (h *hostProber) Interval() time.Duration { return h.interval }

// Sample reads every agent's latest value. It fails when any agent has no
// value, a stale one, or one out of bounds; Value is the extreme value
// over the agents in the direction of the bound (the highest when a max
// is set, else the lowest), so that a chart of the probe shows the worst
// agent.
func (h *hostProber) Sample(_ context.Context) Sample {
	now := h.now()
	every := h.interval
	if p, ok := h.src.(ReportPacer); ok {
		every = max(every, p.ReportInterval())
	}
	stale := StaleIntervals * every
	var problems []string
	kind := ""
	worst, worstAgent := math.NaN(), ""
	note := func(k, msg string) {
		if kind == "" {
			kind = k
		}
		problems = append(problems, msg)
	}
	for _, id := range h.agents {
		v, at, ok := h.src.Latest(id, h.metric)
		switch age := now.Sub(at); {
		case !ok:
			note(FailNoData, fmt.Sprintf("agent %s: no %s reported", id, h.metric))
			continue
		case age > stale:
			note(FailStale, fmt.Sprintf("agent %s: latest %s is %v old, over %d intervals of %v: stale", id, h.metric, age.Round(time.Millisecond), StaleIntervals, every))
			continue
		}
		if why := h.bounds.judge(v); why != "" {
			note(FailBounds, fmt.Sprintf("agent %s: %s %s", id, h.metric, why))
		}
		if h.worse(v, worst) {
			worst, worstAgent = v, id
		}
	}
	if problems != nil {
		if len(problems) > maxProblems {
			problems = append(problems[:maxProblems], fmt.Sprintf("and %d more", len(problems)-maxProblems))
		}
		return failed(now, worst, kind, strings.Join(problems, "; "))
	}
	return Sample{At: now, Value: worst, Pass: true,
		Detail: fmt.Sprintf("%s %s on %s (%d agents)", h.metric, fmtFloat(worst), worstAgent, len(h.agents))}
}

// worse reports whether v is further towards the bound than cur.
func (h *hostProber) worse(v, cur float64) bool {
	switch {
	case math.IsNaN(v):
		return false
	case math.IsNaN(cur):
		return true
	case h.bounds.max == nil && h.bounds.min != nil:
		return v < cur
	default:
		return v > cur
	}
}
