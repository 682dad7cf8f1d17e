package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Type is a metric family's TYPE in the exposition.
type Type string

// The metric types this package writes.
const (
	TypeGauge   Type = "gauge"
	TypeCounter Type = "counter"
)

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Emit records one sample of a GaugeFunc family; labelValues follow the
// family's label names in order.
type Emit func(value float64, labelValues ...string)

// Registry holds metric families and writes them in the Prometheus text
// format. It is safe for concurrent use. Registering a family with a bad
// name or a name already taken panics: names are constants in the code,
// so that is a programmer error (docs/style.md, errors, logging and shutdown), caught by the first test
// that builds the registry.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
	hooks    []func()

	// scrape serialises Write: hooks may reset and refill gauges, and two
	// scrapes interleaving would each see the other's half-filled state.
	scrape sync.Mutex
}

// family is one metric name with its HELP, TYPE and samples.
type family struct {
	name, help string
	typ        Type
	labels     []string

	mu     sync.Mutex
	values map[string]float64 // by rendered label set, for Gauge and Counter
	// collect, for a GaugeFunc, produces the samples at scrape time.
	collect func(Emit)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: make(map[string]*family)}
}

// register adds a family or panics (see Registry).
func (r *Registry) register(f *family) {
	if !metricNameRE.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	seen := map[string]bool{}
	for _, l := range f.labels {
		if !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__") || seen[l] {
			panic(fmt.Sprintf("metrics: %s: invalid or repeated label name %q", f.name, l))
		}
		seen[l] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[f.name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	r.families[f.name] = f
}

// Gauge is a family of values that go up and down, one per label set.
type Gauge struct{ f *family }

// Counter is a family of values that only go up, one per label set.
type Counter struct{ f *family }

// Gauge registers a gauge family named name with the given label names.
func (r *Registry) Gauge(name, help string, labelNames ...string) *Gauge {
	f := &family{name: name, help: help, typ: TypeGauge, labels: labelNames, values: map[string]float64{}}
	r.register(f)
	return &Gauge{f}
}

// Counter registers a counter family. By Prometheus convention its name
// should end in _total.
func (r *Registry) Counter(name, help string, labelNames ...string) *Counter {
	f := &family{name: name, help: help, typ: TypeCounter, labels: labelNames, values: map[string]float64{}}
	r.register(f)
	return &Counter{f}
}

// GaugeFunc registers a gauge family whose samples collect produces at
// every scrape. collect must emit each label set at most once; it runs
// with no lock of the registry held, and never for two scrapes at once.
func (r *Registry) GaugeFunc(name, help string, labelNames []string, collect func(Emit)) {
	r.register(&family{name: name, help: help, typ: TypeGauge, labels: labelNames, collect: collect})
}

// CounterFunc registers a counter family whose samples collect produces
// at every scrape, from counts kept elsewhere (they must only go up). The
// rules of GaugeFunc apply.
func (r *Registry) CounterFunc(name, help string, labelNames []string, collect func(Emit)) {
	r.register(&family{name: name, help: help, typ: TypeCounter, labels: labelNames, collect: collect})
}

// OnScrape adds a hook run at the start of every Write, before any family
// is read: the place to Set gauges from state kept elsewhere.
func (r *Registry) OnScrape(hook func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, hook)
}

// Set sets the gauge of the label set given by labelValues.
func (g *Gauge) Set(v float64, labelValues ...string) { g.f.set(v, false, labelValues) }

// Reset forgets every label set, so that a scrape-time refill drops the
// sets that no longer exist (a fault kind no longer held).
func (g *Gauge) Reset() {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	clear(g.f.values)
}

// Add adds v, which must not be negative, to the counter of the label set.
func (c *Counter) Add(v float64, labelValues ...string) {
	if v < 0 || math.IsNaN(v) {
		panic(fmt.Sprintf("metrics: %s: counter decreased by %v", c.f.name, v))
	}
	c.f.set(v, true, labelValues)
}

// Inc adds one to the counter of the label set.
func (c *Counter) Inc(labelValues ...string) { c.Add(1, labelValues...) }

func (f *family) set(v float64, add bool, labelValues []string) {
	key := f.labelSet(labelValues)
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		v += f.values[key]
	}
	f.values[key] = v
}

// labelSet renders `{a="x",b="y"}` (or "" without labels). Wrong arity
// panics: the label names and the call site are both in the code.
func (f *family) labelSet(values []string) string {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s: %d label values for %d label names %v", f.name, len(values), len(f.labels), f.labels))
	}
	if len(values) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range f.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(values[i]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// samples returns the family's samples sorted by label set, so that the
// output is stable from one scrape to the next (and golden-testable).
func (f *family) samples() (keys []string, values map[string]float64) {
	values = map[string]float64{}
	if f.collect != nil {
		f.collect(func(v float64, labelValues ...string) {
			key := f.labelSet(labelValues)
			if _, dup := values[key]; dup {
				// Two samples with one label set make the whole scrape
				// invalid for Prometheus: a bug in collect, which a
				// test of that collector shows.
				panic(fmt.Sprintf("metrics: %s: label set %s emitted twice", f.name, key))
			}
			values[key] = v
		})
	} else {
		f.mu.Lock()
		for k, v := range f.values {
			values[k] = v
		}
		f.mu.Unlock()
	}
	keys = make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, values
}

// Write runs the scrape hooks and writes every family in the text format,
// sorted by name. A family with no sample is written with its HELP and
// TYPE only, so that the metric's existence is visible before its first
// value. The whole exposition is built first and written at once: a
// reader never gets half a scrape.
func (r *Registry) Write(w io.Writer) error {
	r.scrape.Lock()
	defer r.scrape.Unlock()
	r.mu.Lock()
	hooks := slices.Clone(r.hooks)
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	for _, h := range hooks {
		h()
	}
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	for _, f := range fams {
		fmt.Fprintf(&buf, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
		keys, values := f.samples()
		for _, k := range keys {
			buf.WriteString(f.name)
			buf.WriteString(k)
			buf.WriteByte(' ')
			buf.WriteString(formatValue(values[k]))
			buf.WriteByte('\n')
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// escapeHelp escapes a HELP text: backslash and line feed (the format's
// rule; double quotes stay as they are there).
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeLabelValue escapes a label value: backslash, double quote and
// line feed.
func escapeLabelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// formatValue writes a float as Prometheus parses it: the shortest
// representation, and +Inf, -Inf, NaN spelled its way.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
