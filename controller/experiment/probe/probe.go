package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// Sample is one measurement of a probe.
type Sample struct {
	// At is when the result was known: the end of the request or query.
	// The time from a breach to the failing sample is measured against
	// it.
	At time.Time `json:"at"`
	// Value is the number measured: the latency in milliseconds for an
	// HTTP probe, the query's value for a Prometheus probe, the extreme
	// value over the agents for a host probe. It is NaN when nothing was
	// measured (the server was down, the query returned no data).
	Value float64 `json:"value"`
	// Pass is whether the sample meets the probe's bounds.
	Pass bool `json:"pass"`
	// Err says why the sample failed; empty when it passed.
	Err string `json:"err,omitempty"`
	// Detail is a short account for reports and progress lines. On a
	// failure it starts with the kind of failure (one of the Fail…
	// constants); on a pass it says what was seen.
	Detail string `json:"detail,omitempty"`
}

// The kinds of failure a failing Sample's Detail starts with.
const (
	FailStatus    = "status"     // HTTP: an answer with another status than expected
	FailLatency   = "latency"    // HTTP: an answer slower than max_latency
	FailTimeout   = "timeout"    // no answer within the timeout
	FailError     = "error"      // the request or query could not be made or was refused
	FailNoData    = "no data"    // the query returned no sample, or an agent reported no value
	FailSeveral   = "several"    // the query returned more than one series
	FailWrongType = "wrong type" // the query returned a range vector or a string
	FailBounds    = "bounds"     // the value is outside [min, max] (or NaN)
	FailStale     = "stale"      // an agent's latest value is older than StaleIntervals intervals
)

// Prober takes samples of one probe. Sample never blocks past ctx or the
// probe's own timeout.
type Prober interface {
	// Name is the probe's name in the experiment file.
	Name() string
	// Interval is the time between two samples.
	Interval() time.Duration
	// Sample measures once.
	Sample(ctx context.Context) Sample
}

// The limits of a probe's spec.
const (
	// DefaultInterval is a probe's interval when the file gives none.
	DefaultInterval = time.Second
	// MinInterval is the shortest interval: shorter would load the
	// probed service for no gain against a 1 s abort.
	MinInterval = 100 * time.Millisecond
	// MaxInterval is the longest: a steady state looked at less often
	// than this is not being watched.
	MaxInterval = 10 * time.Minute
	// DefaultHTTPTimeout bounds one HTTP request when the file gives no
	// timeout.
	DefaultHTTPTimeout = 5 * time.Second
	// MaxHTTPTimeout is the longest timeout an HTTP probe may ask for.
	MaxHTTPTimeout = time.Minute
	// QueryTimeout bounds one Prometheus query (the spec has no field
	// for it): long enough for a busy server, short enough that a hung
	// one fails the sample well before a person would notice.
	QueryTimeout = 5 * time.Second
)

// ErrHostNeedsAgents is returned by New for a host probe: which agents it
// watches is known only once the experiment chose its targets, so host
// probes are built by NewHost.
var ErrHostNeedsAgents = errors.New("a host probe watches the agents its target chose: build it with NewHost")

// New builds the Prober of an HTTP or Prometheus probe from its spec,
// with the defaults filled. A spec that breaks a rule is refused with an
// error naming each field at fault and its limit. A host probe is refused
// with ErrHostNeedsAgents: NewHost builds it, from hosts and the agents
// its target chose. hosts is not used by the other kinds and may be nil.
func New(p experiment.Probe, hosts HostSource) (Prober, error) {
	_ = hosts
	interval, errs := checkCommon(p)
	switch {
	case p.HTTP != nil:
		h, err := newHTTP(p.Name, interval, *p.HTTP)
		if err != nil || errs != nil {
			return nil, joinProbe(p.Name, errs, err)
		}
		return h, nil
	case p.Prometheus != nil:
		q, err := newPrometheus(p.Name, interval, *p.Prometheus)
		if err != nil || errs != nil {
			return nil, joinProbe(p.Name, errs, err)
		}
		return q, nil
	case p.Host != nil:
		return nil, joinProbe(p.Name, errs, ErrHostNeedsAgents)
	}
	return nil, joinProbe(p.Name, errs)
}

// checkCommon checks the fields every probe has and exactly-one-kind, and
// returns the interval with its default.
func checkCommon(p experiment.Probe) (time.Duration, error) {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name: empty; every probe needs a name"))
	}
	interval := p.Interval.D()
	switch {
	case interval == 0:
		interval = DefaultInterval
	case interval < MinInterval:
		errs = append(errs, fmt.Errorf("interval: %v is under the minimum of %v", interval, MinInterval))
	case interval > MaxInterval:
		errs = append(errs, fmt.Errorf("interval: %v is over the maximum of %v", interval, MaxInterval))
	}
	kinds := 0
	for _, set := range []bool{p.HTTP != nil, p.Prometheus != nil, p.Host != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		errs = append(errs, fmt.Errorf("exactly one of http, prometheus and host must be set, got %d", kinds))
	}
	return interval, errors.Join(errs...)
}

// joinProbe puts the probe's name in front of every problem.
func joinProbe(name string, errs ...error) error {
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	return fmt.Errorf("probe %q: %w", name, err)
}

// checkURL checks that raw is an absolute http:// or https:// URL with a
// host; field names it in the error.
func checkURL(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%s: empty; want an http:// or https:// URL", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %q does not parse: %w", field, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: %q: the scheme must be http or https, not %q", field, raw, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: %q has no host", field, raw)
	}
	return u, nil
}

// bounds is an optional [Min, Max] interval.
type bounds struct {
	min, max *float64
}

// check refuses bounds that are not finite numbers or whose min is above
// their max.
func (b bounds) check() error {
	var errs []error
	finite := func(field string, v *float64) {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			errs = append(errs, fmt.Errorf("%s: %v is not a finite number", field, *v))
		}
	}
	finite("min", b.min)
	finite("max", b.max)
	if errs == nil && b.min != nil && b.max != nil && *b.min > *b.max {
		errs = append(errs, fmt.Errorf("min: %v is above max %v", *b.min, *b.max))
	}
	return errors.Join(errs...)
}

// judge says why v is outside the bounds, or "" when it is inside. NaN is
// never inside: a query that divides zero by zero has measured nothing.
func (b bounds) judge(v float64) string {
	switch {
	case math.IsNaN(v):
		return "value is NaN"
	case b.min != nil && v < *b.min:
		return "value " + fmtFloat(v) + " below min " + fmtFloat(*b.min)
	case b.max != nil && v > *b.max:
		return "value " + fmtFloat(v) + " above max " + fmtFloat(*b.max)
	}
	return ""
}

// fmtFloat prints a value as short as it reads back exactly.
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// failed builds a failing sample whose Detail starts with kind.
func failed(at time.Time, value float64, kind, msg string) Sample {
	return Sample{At: at, Value: value, Err: msg, Detail: kind}
}
