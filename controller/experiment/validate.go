package experiment

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/selector"
)

// Validate checks every rule of a valid experiment and returns an *Error
// listing every problem, each as "field: reason" naming the limit, or nil.
// It never modifies the spec. Call it after defaults are filled in (Parse
// does): an interval of 0 is an error here. It checks only what the file
// alone can tell; whether a selector matches agents that can take the
// fault is the controller's to say (Plan).
func (s *Spec) Validate() error {
	var c collector
	checkName(&c, "name", s.Name)
	checkText(&c, "hypothesis", s.Hypothesis, MaxHypothesis)
	checkText(&c, "owner", s.Owner, MaxOwner)
	s.validateTargets(&c)
	s.validateSteps(&c)
	s.validateProbes(&c)
	probes := make(map[string]bool, len(s.Probes))
	for _, p := range s.Probes {
		probes[p.Name] = true
	}
	if len(s.SteadyState) == 0 {
		c.addf("steady_state", "must name at least one probe: without a steady state there is nothing to hold the experiment to")
	}
	checkRefs(&c, "steady_state", s.SteadyState, probes)
	checkRefs(&c, "abort_when", s.AbortWhen, probes)
	checkDuration(&c, "recovery", s.Recovery.D(), time.Nanosecond, MaxRecovery)
	if s.ErrorBudget != nil {
		s.ErrorBudget.validate(&c, "error_budget")
	}
	return c.err()
}

// checkName enforces the naming rule of every name in the file.
func checkName(c *collector, field, name string) {
	switch {
	case name == "":
		c.addf(field, "is required: 1 to %d characters of a-z, 0-9 and -", MaxNameLen)
	case len(name) > MaxNameLen:
		c.addf(field, "is %d characters, above the limit of %d", len(name), MaxNameLen)
	case strings.IndexFunc(name, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' }) >= 0:
		c.addf(field, "%q may hold only a-z, 0-9 and -", name)
	}
}

func checkText(c *collector, field, s string, limit int) {
	switch {
	case strings.TrimSpace(s) == "":
		c.addf(field, "is required (at most %d bytes)", limit)
	case len(s) > limit:
		c.addf(field, "is %d bytes, above the limit of %d bytes", len(s), limit)
	case !utf8.ValidString(s):
		c.addf(field, "is not valid UTF-8")
	}
}

// checkDuration enforces lo <= d <= hi.
func checkDuration(c *collector, field string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		if lo == time.Nanosecond {
			c.addf(field, "must be above 0 and at most %s, got %s", hi, d)
			return
		}
		c.addf(field, "must be between %s and %s, got %s", lo, hi, d)
	}
}

// checkRefs checks a list of probe names: each known, none twice.
func checkRefs(c *collector, field string, names []string, known map[string]bool) {
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !known[n]:
			c.addf(f, "names no probe: %q", n)
		case seen[n]:
			c.addf(f, "names probe %q twice", n)
		}
		seen[n] = true
	}
}

func (s *Spec) validateTargets(c *collector) {
	switch n := len(s.Targets); {
	case n == 0:
		c.addf("targets", "must hold at least one target")
	case n > MaxTargets:
		c.addf("targets", "holds %d targets, above the limit of %d", n, MaxTargets)
	}
	names := make([]string, 0, len(s.Targets))
	for n := range s.Targets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s.Targets[n].validate(c, "targets."+n, n)
	}
}

func (t Target) validate(c *collector, path, name string) {
	checkName(c, path, name)
	if t.Selector == "" && len(t.Agents) == 0 {
		// A group call allows it, but in a file it is more likely a
		// forgotten line than a wish to hit the whole fleet.
		c.addf(path, "needs a selector or agents: an empty selector would match the whole fleet")
	}
	if _, err := selector.Parse(t.Selector); err != nil {
		c.addf(path+".selector", "%s", err)
	}
	if n := len(t.Agents); n > limits.MaxSelectIDs {
		c.addf(path+".agents", "lists %d agents, above the limit of %d", n, limits.MaxSelectIDs)
	}
	seen := make(map[string]bool, len(t.Agents))
	for i, a := range t.Agents {
		f := fmt.Sprintf("%s.agents[%d]", path, i)
		switch {
		case a == "":
			c.addf(f, "is empty")
		case len(a) > limits.MaxID:
			c.addf(f, "is %d bytes, above the limit of %d bytes", len(a), limits.MaxID)
		case seen[a]:
			c.addf(f, "lists agent %q twice", a)
		}
		seen[a] = true
	}
	if t.Count > 0 && t.Percent != 0 {
		c.addf(path, "sets both count and percent: at most one of them")
	}
	if t.Count > MaxTargetAgents {
		c.addf(path+".count", "must be at most %d, got %d", MaxTargetAgents, t.Count)
	}
	if math.IsNaN(t.Percent) || t.Percent < 0 || t.Percent > 100 {
		c.addf(path+".percent", "must be above 0 and at most 100, got %v", t.Percent)
	}
	if t.Min > MaxTargetAgents {
		c.addf(path+".min", "must be at most %d, got %d", MaxTargetAgents, t.Min)
	}
	if t.Count > 0 && t.Min > t.Count {
		c.addf(path+".min", "must be at most count (%d), got %d", t.Count, t.Min)
	}
	if t.Selector == "" && len(t.Agents) > 0 && int(t.Min) > len(t.Agents) {
		c.addf(path+".min", "must be at most the %d agents listed, got %d", len(t.Agents), t.Min)
	}
}

func (s *Spec) validateSteps(c *collector) {
	switch n := len(s.Steps); {
	case n == 0:
		c.addf("steps", "must hold at least one step")
	case n > MaxSteps:
		c.addf("steps", "holds %d steps, above the limit of %d", n, MaxSteps)
	}
	index := make(map[string]int, len(s.Steps))
	for i, st := range s.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		checkName(c, path+".name", st.Name)
		if j, dup := index[st.Name]; dup && st.Name != "" {
			c.addf(path+".name", "%q is already the name of steps[%d]", st.Name, j)
		} else {
			index[st.Name] = i
		}
		if _, ok := s.Targets[st.Target]; !ok {
			c.addf(path+".target", "names no target: %q", st.Target)
		}
		if st.Start < 0 || st.Start.D() > MaxTimeline {
			c.addf(path+".start", "must be between 0s and %s, got %s", MaxTimeline, st.Start.D())
		}
		checkDuration(c, path+".duration", st.Duration.D(), MinStepDuration, MaxStepDuration)
		stepFaultProblems(c, path, &s.Steps[i])
	}
	cyclic := false
	for i, st := range s.Steps {
		if st.After == "" {
			continue
		}
		path := fmt.Sprintf("steps[%d].after", i)
		if _, ok := index[st.After]; !ok {
			c.addf(path, "names no step: %q", st.After)
			continue
		}
		if loop := afterLoop(s.Steps, index, i); loop != nil {
			cyclic = true
			// Report each cycle once, at its first step in the file.
			if slices.Min(loop) == i {
				names := make([]string, 0, len(loop)+1)
				for _, j := range loop {
					names = append(names, s.Steps[j].Name)
				}
				names = append(names, st.Name)
				c.addf(path, "makes a cycle: %s", strings.Join(names, " after "))
			}
		}
	}
	if cyclic {
		return // the timeline has no end to check
	}
	for i, w := range s.Timeline() {
		if w.End > MaxTimeline {
			c.addf(fmt.Sprintf("steps[%d]", i), "ends %s after the start, above the limit of %s for the whole timeline", w.End, MaxTimeline)
		}
	}
}

// afterLoop returns the steps of the After cycle through step i, from i,
// or nil when following After from i ends.
func afterLoop(steps []Step, index map[string]int, i int) []int {
	path := []int{i}
	seen := map[int]bool{i: true}
	for j := i; ; {
		next, ok := index[steps[j].After]
		if steps[j].After == "" || !ok {
			return nil
		}
		if next == i {
			return path
		}
		if seen[next] {
			return nil // a cycle further on, reported from its own steps
		}
		seen[next] = true
		path = append(path, next)
		j = next
	}
}

func (s *Spec) validateProbes(c *collector) {
	switch n := len(s.Probes); {
	case n == 0:
		c.addf("probes", "must hold at least one probe (steady_state needs one)")
	case n > MaxProbes:
		c.addf("probes", "holds %d probes, above the limit of %d", n, MaxProbes)
	}
	index := make(map[string]int, len(s.Probes))
	for i, p := range s.Probes {
		path := fmt.Sprintf("probes[%d]", i)
		checkName(c, path+".name", p.Name)
		if j, dup := index[p.Name]; dup && p.Name != "" {
			c.addf(path+".name", "%q is already the name of probes[%d]", p.Name, j)
		} else {
			index[p.Name] = i
		}
		checkDuration(c, path+".interval", p.Interval.D(), MinInterval, MaxInterval)
		kinds := 0
		if p.HTTP != nil {
			kinds++
			p.HTTP.validate(c, path+".http")
		}
		if p.Prometheus != nil {
			kinds++
			p.Prometheus.validate(c, path+".prometheus")
		}
		if p.Host != nil {
			kinds++
			p.Host.validate(c, path+".host", s.Targets)
		}
		if kinds != 1 {
			c.addf(path, "must set exactly one of http, prometheus and host, got %d", kinds)
		}
	}
}

// checkURL allows only http and https URLs with a host.
func checkURL(c *collector, field, raw string) {
	if raw == "" {
		c.addf(field, "is required: an http:// or https:// URL")
		return
	}
	if len(raw) > MaxURL {
		c.addf(field, "is %d bytes, above the limit of %d bytes", len(raw), MaxURL)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		c.addf(field, "is not a URL: %s", oneLine(err.Error()))
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		c.addf(field, "must be an http:// or https:// URL, got scheme %q", u.Scheme)
		return
	}
	if u.Host == "" {
		c.addf(field, "has no host")
	}
}

func checkQuery(c *collector, field, q string) {
	switch {
	case strings.TrimSpace(q) == "":
		c.addf(field, "is required: a PromQL expression")
	case len(q) > MaxQuery:
		c.addf(field, "is %d bytes, above the limit of %d bytes", len(q), MaxQuery)
	}
}

// checkBounds requires at least one finite bound, and min <= max.
func checkBounds(c *collector, path string, lo, hi *float64) {
	if lo == nil && hi == nil {
		c.addf(path, "must set min, max or both")
	}
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", lo}, {"max", hi}} {
		if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
			c.addf(path+"."+b.name, "must be a finite number, got %v", *b.v)
		}
	}
	if lo != nil && hi != nil && *lo > *hi {
		c.addf(path+".min", "must be at most max (%v), got %v", *hi, *lo)
	}
}

func (h *HTTPProbe) validate(c *collector, path string) {
	checkURL(c, path+".url", h.URL)
	if h.ExpectStatus < 100 || h.ExpectStatus > 599 {
		c.addf(path+".expect_status", "must be an HTTP status from 100 to 599, got %d", h.ExpectStatus)
	}
	checkDuration(c, path+".timeout", h.Timeout.D(), time.Nanosecond, MaxHTTPTimeout)
	if h.MaxLatency < 0 || h.MaxLatency > h.Timeout {
		c.addf(path+".max_latency", "must be between 0s (no bound but the timeout) and the timeout (%s), got %s", h.Timeout.D(), h.MaxLatency.D())
	}
}

func (p *PrometheusProbe) validate(c *collector, path string) {
	checkURL(c, path+".url", p.URL)
	checkQuery(c, path+".query", p.Query)
	checkBounds(c, path, p.Min, p.Max)
}

func (h *HostProbe) validate(c *collector, path string, targets map[string]Target) {
	if _, ok := targets[h.Target]; !ok {
		c.addf(path+".target", "names no target: %q", h.Target)
	}
	if !slices.Contains(HostMetrics, h.Metric) {
		c.addf(path+".metric", "must be one of %s, got %q", strings.Join(HostMetrics, ", "), h.Metric)
	}
	checkBounds(c, path, h.Min, h.Max)
}

func (e *ErrorBudget) validate(c *collector, path string) {
	checkURL(c, path+".url", e.URL)
	checkQuery(c, path+".query", e.Query)
	if math.IsNaN(e.MinRemaining) || e.MinRemaining <= 0 || e.MinRemaining > 1 {
		c.addf(path+".min_remaining", "must be above 0 and at most 1 (a fraction of the budget), got %v", e.MinRemaining)
	}
	switch {
	case e.BurnRateQuery == "" && e.MaxBurnRate != 0:
		c.addf(path+".burn_rate_query", "is required when max_burn_rate is set")
	case e.BurnRateQuery != "":
		checkQuery(c, path+".burn_rate_query", e.BurnRateQuery)
		if math.IsNaN(e.MaxBurnRate) || math.IsInf(e.MaxBurnRate, 0) || e.MaxBurnRate <= 0 {
			c.addf(path+".max_burn_rate", "must be above 0 when burn_rate_query is set, got %v", e.MaxBurnRate)
		}
	}
}
