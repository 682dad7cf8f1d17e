package report

import (
	"math"
	"time"
)

// This file maps times and values onto a chart: one time axis for the
// whole report, a value axis per chart.

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
