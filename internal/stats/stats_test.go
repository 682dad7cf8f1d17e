package stats

import (
	"testing"
	"time"
)

func TestPercentile_NearestRank(t *testing.T) {
	t.Parallel()
	twenty := make([]int, 20)
	for i := range twenty {
		twenty[i] = 20 - i // 20..1, unsorted on purpose
	}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"p99 of 20 is the max", float64(Percentile(twenty, 99)), 20},
		{"p95 of 20 is the 19th", float64(Percentile(twenty, 95)), 19},
		{"p50 of 20 is the 10th", float64(Percentile(twenty, 50)), 10},
		{"p100 is the max", float64(Percentile(twenty, 100)), 20},
		{"p0 is the min", float64(Percentile(twenty, 0)), 1},
		{"p99 of 100 is the 99th", Percentile(hundred, 99), 99},
		{"p99.5 of 100 is the 100th", Percentile(hundred, 99.5), 100},
		{"p1 of 100 is the 1st", Percentile(hundred, 1), 1},
		{"one sample", Percentile([]float64{7}, 99), 7},
		{"no sample", Percentile([]float64(nil), 99), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if twenty[0] != 20 {
		t.Error("Percentile sorted its argument in place")
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	if got := Median([]time.Duration{4, 1, 3, 2}); got != 2 { // (2+3)/2 in integer nanoseconds
		t.Errorf("Median of 1..4 ns = %v, want 2ns (integer mean of 2 and 3)", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median of 1..4 = %v, want 2.5", got)
	}
	if got := Median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("Median of 1,3,5 = %v, want 3", got)
	}
	s := Summarize([]float64{3, 1, 2, 10})
	if s.N != 4 || s.Min != 1 || s.Max != 10 || s.Median != 2.5 || s.P99 != 10 || s.Spread() != 9 {
		t.Errorf("Summarize = %+v", s)
	}
}
