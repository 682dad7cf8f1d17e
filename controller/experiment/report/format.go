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

// axisNum formats an axis label: short, with an SI prefix from 10 000
// up (a network rate of 125000000 bytes/s labels as 125M), since the
// labels have a narrow margin.
func axisNum(v float64) string {
	a := math.Abs(v)
	for _, p := range []struct {
		f float64
		s string
	}{{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e4, "k"}} {
		if a >= p.f && a < 1e18 {
			if p.s == "k" {
				return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
			}
			return strconv.FormatFloat(v/p.f, 'g', 4, 64) + p.s
		}
	}
	if a >= 1e18 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return num(v)
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

// probeStats are the stats of a probe's samples; a sample without a
// value (NaN) counts in n and failed only.
func probeStats(p *ProbeSeries) stats {
	st := stats{n: len(p.Samples)}
	for _, s := range p.Samples {
		if !s.Pass {
			st.failed++
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

// sampleText says what a sample saw, on one line: its value (or "no
// value") and, for a failure, why.
func sampleText(s *Sample, unit string) string {
	v := float64(s.Value)
	out := "no value"
	if !math.IsNaN(v) {
		out = withUnit(num(v), unit)
	}
	switch {
	case s.Err != "":
		out += ": " + oneLine(s.Err)
	case s.Detail != "":
		out += " (" + oneLine(s.Detail) + ")"
	}
	return out
}
