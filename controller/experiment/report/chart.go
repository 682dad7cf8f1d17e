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
	if a := r.Abort; a != nil && !a.Time().IsZero() {
		ab := x(a.Time())
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
	var fails, errs markers
	for _, s := range p.Samples {
		v := float64(s.Value)
		tip := offset(r.StartedAt, s.At) + "  " + sampleText(&s, p.Unit)
		if math.IsNaN(v) {
			// Nothing measured: the line breaks, and a failure is
			// marked on the time axis.
			pb.gap()
			if !s.Pass {
				errs.add(point{X: x(s.At), Y: c.Plot.Bottom(), Tip: tip})
			}
			continue
		}
		pt := point{X: x(s.At), Y: va.y(c.Plot, v), Tip: tip}
		pb.add(pt.X, pt.Y)
		if a := r.Abort; a != nil && a.Probe == p.Name && s.At.Equal(a.SampleAt) {
			pt.Tip += "  (abort)"
			c.Abort, c.AbortMark = &pt, nil
		} else if !s.Pass {
			fails.add(pt)
		}
	}
	c.Lines = []series{{Class: "s0", Paths: pb.done()}}
	c.Fails, c.Errors = fails.pts, errs.pts
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
