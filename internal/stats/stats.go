// Package stats computes the figures every benchmark reports, one way, so
// that a "p99" means the same thing in each of them.
//
// Percentiles are nearest-rank: the p-th percentile of n samples is the
// sample of rank ceil(p/100 × n) in ascending order, always one of the
// samples, never interpolated and never rounded down. A consequence worth
// stating: with fewer than 100 samples the 99th percentile is the maximum
// (with 20 leader kills, p99 is the worst of the 20, not the second worst).
// The median is the middle sample, or the mean of the two middle ones for
// an even count, not the lower of the two.
package stats

import (
	"math"
	"slices"
	"time"
)

// Number is what the helpers summarise: durations, counts, measurements.
type Number interface {
	~int | ~int64 | ~float64
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// xs, which it does not modify; 0 for no samples. p <= 0 gives the
// minimum.
func Percentile[T Number](xs []T, p float64) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Median returns the median of xs (the mean of the two middle samples for
// an even count); 0 for no samples.
func Median[T Number](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2
}

// Summary is what a benchmark reports about repeated samples: how many,
// their median, the nearest-rank 99th percentile and the spread.
type Summary[T Number] struct {
	N                     int
	Min, Median, P99, Max T
}

// Summarize summarises xs.
func Summarize[T Number](xs []T) Summary[T] {
	if len(xs) == 0 {
		return Summary[T]{}
	}
	return Summary[T]{N: len(xs), Min: slices.Min(xs), Median: Median(xs), P99: Percentile(xs, 99), Max: slices.Max(xs)}
}

// Spread is Max - Min.
func (s Summary[T]) Spread() T { return s.Max - s.Min }

// Millis converts durations to float milliseconds, for b.ReportMetric.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// Micros converts durations to float microseconds, for b.ReportMetric.
func Micros(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Microsecond)
	}
	return out
}
