package report

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// This file holds the number, time and threshold formatting the text and
// HTML renderings share, so that both say the same thing the same way.

// num formats a measured value for people: four significant digits,
// which is more than any probe here measures meaningfully, and no
// exponent for large values.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.Abs(v) >= 1e4:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// withUnit appends a unit, when there is one, to a formatted value.
func withUnit(s, unit string) string {
	if unit == "" {
		return s
	}
	if unit == "%" {
		return s + "%"
	}
	return s + " " + unit
}

// offset formats t as an offset from start ("+41.8s"), rounded to a
// tenth of a second: the finest grain any probe samples at is 100ms.
func offset(start, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(start).Round(100 * time.Millisecond)
	if d < 0 {
		return "-" + (-d).String()
	}
	return "+" + d.String()
}

// threshold describes a probe's pass range: "<= 0.3 s", ">= 99", or
// "0.1 .. 0.9 s"; "-" when it has none.
func threshold(p *ProbeSeries) string {
	switch {
	case p.Min != nil && p.Max != nil:
		return withUnit(num(*p.Min)+" .. "+num(*p.Max), p.Unit)
	case p.Max != nil:
		return "<= " + withUnit(num(*p.Max), p.Unit)
	case p.Min != nil:
		return ">= " + withUnit(num(*p.Min), p.Unit)
	}
	return "-"
}

// stats are the figures a summary gives of a series: its extremes and
// last value over the samples that have a (finite or infinite, but not
// NaN) value, and how many samples failed.
type stats struct {
	n, failed, values int
	min, max, last    float64
}

func probeStats(p *ProbeSeries) stats {
	st := stats{n: len(p.Samples)}
	for _, s := range p.Samples {
		if !s.Pass {
			st.failed++
		}
		if s.Err != "" {
			continue
		}
		st.add(float64(s.Value))
	}
	return st
}

func pointStats(pts []Point) stats {
	st := stats{n: len(pts)}
	for _, p := range pts {
		st.add(float64(p.Value))
	}
	return st
}

func (st *stats) add(v float64) {
	if math.IsNaN(v) {
		return
	}
	if st.values == 0 || v < st.min {
		st.min = v
	}
	if st.values == 0 || v > st.max {
		st.max = v
	}
	st.last = v
	st.values++
}

// figure formats one of the stats' values, "-" when there were none.
func (st stats) figure(v float64) string {
	if st.values == 0 {
		return "-"
	}
	return num(v)
}

// oneLine folds a multi-line string (an error from a remote server) into
// one line for tables.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
