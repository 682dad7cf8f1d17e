package report

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// This file turns series into chart geometry: plain numbers and short
// labels that html.tmpl writes out as SVG. Nothing here knows HTML, and
// nothing in the template computes a coordinate.

// Chart sizes, in SVG user units (CSS pixels at 100 % zoom). The plot
// area leaves room for the y labels on the left and the time labels
// below.
const (
	padLeft, padRight  = 58, 14
	padTop, padBottom  = 12, 26
	probeW, probeH     = 1160, 190
	hostW, hostH       = 380, 170
	ganttRowH, ganttW  = 26, 1160
	maxXTicks          = 10
	yTicksWanted       = 4
	clipMargin         = 4 // how far past the plot an infinite value is drawn
	defaultAxisSeconds = 1
)

// timeAxis maps times onto the x axis of every chart of one report, so
// that all charts line up under the same fault windows.
type timeAxis struct {
	t0, t1 time.Time
}

// newTimeAxis spans the whole experiment: from its start (or the first
// thing recorded) to its end or the last thing recorded.
func newTimeAxis(r *Report) timeAxis {
	t0 := r.StartedAt
	if t0.IsZero() {
		t0 = r.firstRecorded()
	}
	t1 := r.EndedAt
	if last := r.lastRecorded(); last.After(t1) {
		t1 = last
	}
	if !t1.After(t0) {
		t1 = t0.Add(defaultAxisSeconds * time.Second)
	}
	return timeAxis{t0: t0, t1: t1}
}

// frac is where t falls on the axis, 0 at the start and 1 at the end,
// clamped so that a stray timestamp cannot draw outside the chart.
func (a timeAxis) frac(t time.Time) float64 {
	f := float64(t.Sub(a.t0)) / float64(a.t1.Sub(a.t0))
	return math.Max(0, math.Min(1, f))
}

// ticks returns the offsets at which to label the axis: a round step
// that gives at most maxXTicks labels.
func (a timeAxis) ticks() []time.Duration {
	span := a.t1.Sub(a.t0)
	steps := []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	}
	// Past the longest round step (a report spanning weeks, or one
	// with a stray timestamp), whole hours that give maxXTicks labels.
	step := (span / maxXTicks).Truncate(time.Hour) + time.Hour
	for _, s := range steps {
		if span/s < maxXTicks {
			step = s
			break
		}
	}
	var out []time.Duration
	for d := time.Duration(0); ; d += step {
		out = append(out, d)
		// Compared before adding: d+step may overflow near the
		// longest Duration.
		if d > span-step || len(out) > maxXTicks {
			return out
		}
	}
}

// box is a chart's plot area.
type box struct{ X, Y, W, H float64 }

func (b box) Right() float64  { return b.X + b.W }
func (b box) Bottom() float64 { return b.Y + b.H }

// chart is the geometry of one line chart.
type chart struct {
	W, H  int
	Plot  box
	Fault []rect   // fault windows, shaded under everything else
	YGrid []tick   // horizontal grid lines with their value labels
	XGrid []tick   // vertical time ticks with offset labels
	Lines []series // one per agent (host charts) or one (probes)
	// Thresholds are the probe's Min and Max as dashed lines.
	Thresholds []tick
	// Fails are failing samples with a value; Errors failing samples
	// without one, marked on the x axis.
	Fails  []point
	Errors []point
	// Abort marks the sample that aborted the experiment, in the chart
	// of the probe that took it; AbortMark is the abort's time in every
	// other chart, so that each can be read against it.
	Abort     *point
	AbortMark *float64
}

type rect struct{ X, Y, W, H float64 }

// tick is a line at Pos (y for horizontal ones, x for vertical ones)
// with its label.
type tick struct {
	Pos   float64
	Label string
}

// point is a marker; Tip is its tooltip text.
type point struct {
	X, Y float64
	Tip  string
}

// series is a line; Paths holds one SVG polyline points list per run of
// consecutive values (a sample without a value breaks the line).
type series struct {
	Class string
	Paths []string
}

// valueAxis maps values onto the y axis of one chart.
type valueAxis struct{ lo, hi float64 }

// newValueAxis spans the finite values and the thresholds with round
// limits: from 0 when nothing is negative (a latency or a ratio read
// against zero is not misleading), and 0..100 for percentages that fit.
func newValueAxis(values []float64, percent bool) (valueAxis, []float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		v = clampValue(v)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if lo > hi { // no finite value at all
		lo, hi = 0, 1
	}
	if lo >= 0 {
		lo = 0
	}
	if percent && lo >= 0 && hi <= 100 {
		hi = 100
	}
	if hi == lo {
		hi = lo + math.Max(1, math.Abs(lo)/10)
	}
	step := niceStep((hi - lo) / yTicksWanted)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	// Bounded: at the limits of float64 precision lo+i*step may not grow.
	for i := 0; i <= 2*yTicksWanted+2; i++ {
		v := lo + float64(i)*step
		if v > hi+step/2 {
			break
		}
		// Rounded to the step's precision, so 0.30000000000000004
		// labels as 0.3.
		ticks = append(ticks, roundTo(v, step))
	}
	return valueAxis{lo: lo, hi: hi}, ticks
}

// maxAxisValue bounds what a chart lays out: far beyond any measurement,
// and small enough that the axis arithmetic (hi-lo, rounding to a step)
// cannot overflow. Larger values are drawn at the bound.
const maxAxisValue = 1e300

func clampValue(v float64) float64 { return math.Max(-maxAxisValue, math.Min(maxAxisValue, v)) }

// niceStep rounds raw up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func roundTo(v, step float64) float64 {
	digits := max(0, int(-math.Floor(math.Log10(step)))+2)
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// y maps v into the plot; infinities are drawn just outside it.
func (a valueAxis) y(b box, v float64) float64 {
	switch {
	case math.IsInf(v, 1):
		return b.Y - clipMargin
	case math.IsInf(v, -1):
		return b.Bottom() + clipMargin
	}
	f := (clampValue(v) - a.lo) / (a.hi - a.lo)
	return b.Bottom() - math.Max(-0.02, math.Min(1.02, f))*b.H
}

// newChart lays out an empty chart of w×h with its time grid and the
// fault windows shaded.
func newChart(r *Report, w, h int, ax timeAxis, windows [][2]time.Time) *chart {
	c := &chart{W: w, H: h, Plot: box{X: padLeft, Y: padTop, W: float64(w - padLeft - padRight), H: float64(h - padTop - padBottom)}}
	x := func(t time.Time) float64 { return c.Plot.X + ax.frac(t)*c.Plot.W }
	for _, win := range windows {
		x0, x1 := x(win[0]), x(win[1])
		// A window shorter than a pixel is still shown.
		c.Fault = append(c.Fault, rect{X: x0, Y: c.Plot.Y, W: math.Max(1, x1-x0), H: c.Plot.H})
	}
	for _, d := range ax.ticks() {
		c.XGrid = append(c.XGrid, tick{Pos: x(ax.t0.Add(d)), Label: "+" + d.String()})
	}
	if a := r.Abort; a != nil && !a.SampleAt.IsZero() {
		ab := x(a.SampleAt)
		c.AbortMark = &ab
	}
	return c
}

// setValues lays out the y axis for values (and the thresholds).
func (c *chart) setValues(values []float64, percent bool) valueAxis {
	va, ticks := newValueAxis(values, percent)
	for _, v := range ticks {
		c.YGrid = append(c.YGrid, tick{Pos: va.y(c.Plot, v), Label: axisNum(v)})
	}
	return va
}

// pathBuilder collects polyline points, starting a new path at a gap.
type pathBuilder struct {
	paths []string
	cur   strings.Builder
}

func (p *pathBuilder) add(x, y float64) {
	if p.cur.Len() > 0 {
		p.cur.WriteByte(' ')
	}
	p.cur.WriteString(coord(x))
	p.cur.WriteByte(',')
	p.cur.WriteString(coord(y))
}

func (p *pathBuilder) gap() {
	if p.cur.Len() > 0 {
		p.paths = append(p.paths, p.cur.String())
		p.cur.Reset()
	}
}

func (p *pathBuilder) done() []string {
	p.gap()
	return p.paths
}

// coord formats a coordinate to a tenth of a unit: finer is invisible
// and only makes the page bigger.
func coord(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// probeChart draws one probe: its samples as a line, thresholds, failing
// samples, samples without a value, and the abort marker when this probe
// caused the abort.
func probeChart(r *Report, p *ProbeSeries, ax timeAxis, windows [][2]time.Time) *chart {
	c := newChart(r, probeW, probeH, ax, windows)
	var values []float64
	for _, s := range p.Samples {
		values = append(values, float64(s.Value))
	}
	for _, th := range []*float64{p.Min, p.Max} {
		if th != nil {
			values = append(values, *th)
		}
	}
	va := c.setValues(values, p.Unit == "%")
	x := func(t time.Time) float64 { return c.Plot.X + ax.frac(t)*c.Plot.W }
	if p.Min != nil {
		c.Thresholds = append(c.Thresholds, tick{Pos: va.y(c.Plot, *p.Min), Label: "min " + withUnit(num(*p.Min), p.Unit)})
	}
	if p.Max != nil {
		c.Thresholds = append(c.Thresholds, tick{Pos: va.y(c.Plot, *p.Max), Label: "max " + withUnit(num(*p.Max), p.Unit)})
	}
	var pb pathBuilder
	for _, s := range p.Samples {
		v := float64(s.Value)
		tip := offset(r.StartedAt, s.At) + "  " + sampleText(&s, p.Unit)
		if math.IsNaN(v) {
			// Nothing measured: the line breaks, and a failure is
			// marked on the time axis.
			pb.gap()
			if !s.Pass {
				c.Errors = append(c.Errors, point{X: x(s.At), Y: c.Plot.Bottom(), Tip: tip})
			}
			continue
		}
		pt := point{X: x(s.At), Y: va.y(c.Plot, v), Tip: tip}
		pb.add(pt.X, pt.Y)
		if a := r.Abort; a != nil && a.Probe == p.Name && s.At.Equal(a.SampleAt) {
			pt.Tip += "  (abort)"
			c.Abort, c.AbortMark = &pt, nil
		} else if !s.Pass {
			c.Fails = append(c.Fails, pt)
		}
	}
	c.Lines = []series{{Class: "s0", Paths: pb.done()}}
	// An abort caused by this probe whose sample is not in the series
	// (a report cut short) is still marked, on the x axis.
	if a := r.Abort; a != nil && a.Probe == p.Name && c.Abort == nil && !a.SampleAt.IsZero() {
		c.Abort, c.AbortMark = &point{X: x(a.SampleAt), Y: c.Plot.Bottom(), Tip: offset(r.StartedAt, a.SampleAt) + "  abort"}, nil
	}
	return c
}

// hostChart draws one metric of every agent of a target, a line each.
func hostChart(r *Report, metric string, hosts []*HostSeries, ax timeAxis, windows [][2]time.Time) *chart {
	c := newChart(r, hostW, hostH, ax, windows)
	var values []float64
	for _, h := range hosts {
		for _, p := range h.Metrics[metric] {
			values = append(values, float64(p.Value))
		}
	}
	va := c.setValues(values, strings.HasSuffix(metric, "_percent"))
	for i, h := range hosts {
		var pb pathBuilder
		for _, p := range h.Metrics[metric] {
			if math.IsNaN(float64(p.Value)) {
				pb.gap()
				continue
			}
			pb.add(c.Plot.X+ax.frac(p.At)*c.Plot.W, va.y(c.Plot, float64(p.Value)))
		}
		c.Lines = append(c.Lines, series{Class: seriesClass(i), Paths: pb.done()})
	}
	return c
}

// seriesClass names the colour of the i-th line of a chart (html.tmpl's
// CSS defines s0…s7; more agents than that reuse the colours).
func seriesClass(i int) string { return "s" + strconv.Itoa(i%8) }

// gantt is the fault timeline: a row per step with its planned window
// as an outline and its actual window as a bar.
type gantt struct {
	W, H  int
	Plot  box
	Rows  []ganttRow
	XGrid []tick
	Abort *point
}

type ganttRow struct {
	Label   string // step name
	LabelY  float64
	Planned *rect
	Actual  *rect
	Tip     string
}

func newGantt(r *Report, ax timeAxis) *gantt {
	h := padTop + padBottom + ganttRowH*max(1, len(r.Steps))
	g := &gantt{W: ganttW, H: h, Plot: box{X: 150, Y: padTop, W: float64(ganttW - 150 - padRight), H: float64(h - padTop - padBottom)}}
	x := func(t time.Time) float64 { return g.Plot.X + ax.frac(t)*g.Plot.W }
	for _, d := range ax.ticks() {
		g.XGrid = append(g.XGrid, tick{Pos: x(ax.t0.Add(d)), Label: "+" + d.String()})
	}
	faultsFrom := r.faultPhaseStart()
	for i, st := range r.Steps {
		y := g.Plot.Y + float64(i*ganttRowH)
		row := ganttRow{Label: st.Name, LabelY: y + ganttRowH/2 + 4}
		if !faultsFrom.IsZero() && st.PlannedDuration > 0 {
			p0 := faultsFrom.Add(st.PlannedStart)
			x0, x1 := x(p0), x(p0.Add(st.PlannedDuration))
			row.Planned = &rect{X: x0, Y: y + 3, W: math.Max(1, x1-x0), H: ganttRowH - 6}
		}
		row.Tip = st.Kind + ": " + oneLine(st.Fault)
		if !st.Start.IsZero() {
			end := st.End
			if end.IsZero() {
				end = ax.t1
			}
			x0, x1 := x(st.Start), x(end)
			row.Actual = &rect{X: x0, Y: y + 7, W: math.Max(1, x1-x0), H: ganttRowH - 14}
			row.Tip += "  " + offset(r.StartedAt, st.Start) + " .. " + offset(r.StartedAt, st.End)
		} else {
			row.Tip += "  (not run)"
		}
		g.Rows = append(g.Rows, row)
	}
	if a := r.Abort; a != nil && !a.SampleAt.IsZero() {
		g.Abort = &point{X: x(a.SampleAt), Y: g.Plot.Y, Tip: "abort " + offset(r.StartedAt, a.SampleAt)}
	}
	return g
}

// faultPhaseStart is where the planned timeline is counted from: the
// start of the earliest step that ran, less its planned offset. Zero
// when no step ran.
func (r *Report) faultPhaseStart() time.Time {
	var t time.Time
	for _, st := range r.Steps {
		if st.Start.IsZero() {
			continue
		}
		if s := st.Start.Add(-st.PlannedStart); t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}

// firstRecorded is the earliest time anywhere in the report.
func (r *Report) firstRecorded() time.Time {
	var first time.Time
	see := func(t time.Time) {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	for _, s := range r.Steps {
		see(s.Start)
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
	return first
}
