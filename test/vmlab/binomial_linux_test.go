package vmlab_test

import (
	"fmt"
	"math"
	"testing"
)

// The lab judges every rate netem applies by chance (loss, duplicate,
// corrupt) the same way: a binomial confidence interval around what was
// measured, from the number of samples actually taken, never a fixed
// slack. Two conditions together:
//
//   - the 4-sigma Wilson score interval of the measured fraction must
//     contain the configured one (a false alarm about once in 16 000 runs);
//   - the run must have had enough samples for that to mean something: at
//     the configured rate the interval's half-width is at most a tenth of
//     the rate (minSamples). A rate 20 % off would then need a 4-sigma
//     accident to pass, so a loss of 24 % measured for 30 % asked, or
//     duplicates 15 % short, fail.

// binomialZ is the interval's width in standard deviations.
const binomialZ = 4

// maxRelHalfWidth is the widest interval the check accepts, relative to
// the configured rate.
const maxRelHalfWidth = 0.1

// minSamples is the smallest n for which the interval at rate p is at most
// maxRelHalfWidth·p wide on each side: z·√(p(1-p)/n) ≤ 0.1·p.
func minSamples(p float64) int {
	return int(math.Ceil(binomialZ * binomialZ * (1 - p) / (maxRelHalfWidth * maxRelHalfWidth * p)))
}

// wilson is the Wilson score interval at binomialZ for k successes in n.
func wilson(k, n int) (lo, hi float64) {
	z2, nf := float64(binomialZ*binomialZ), float64(n)
	ph := float64(k) / nf
	center := (ph + z2/(2*nf)) / (1 + z2/nf)
	hw := binomialZ / (1 + z2/nf) * math.Sqrt(ph*(1-ph)/nf+z2/(4*nf*nf))
	return center - hw, center + hw
}

// binomialCheck judges k events in n trials against the configured rate
// p; it returns "" when they agree, else the reason.
func binomialCheck(k, n int, p float64) string {
	if need := minSamples(p); n < need {
		return fmt.Sprintf("only %d samples; at %.0f %% the check needs %d to tell a 20 %% error from chance", n, 100*p, need)
	}
	lo, hi := wilson(k, n)
	if p < lo || p > hi {
		return fmt.Sprintf("measured %.2f %% (%d of %d), whose %d-sigma interval [%.2f, %.2f] %% excludes the configured %.0f %%",
			100*float64(k)/float64(n), k, n, binomialZ, 100*lo, 100*hi, 100*p)
	}
	return ""
}

// TestBinomialCheck runs without a VM: the check passes what chance
// explains at the sample sizes the lab uses and refuses the errors the
// issue found (24.4 % measured for 30 % asked; duplicates 15 % short),
// and any 20 % error.
func TestBinomialCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		k, n int
		p    float64
		pass bool
	}{
		{"loss exact", 1260, 4200, 0.30, true},
		{"loss 3 sigma high", 1260 + 89, 4200, 0.30, true},
		{"loss 24.4 % for 30 %", 1025, 4200, 0.30, false},
		{"loss 20 % low", 1008, 4200, 0.30, false},
		{"loss 20 % high", 1512, 4200, 0.30, false},
		{"duplicate 15 % short", 1156, 6800, 0.20, false},
		{"duplicate 20 % high", 1632, 6800, 0.20, false},
		{"duplicate exact", 1360, 6800, 0.20, true},
		{"the old sample size", 150, 500, 0.30, false},
	} {
		why := binomialCheck(tc.k, tc.n, tc.p)
		if (why == "") != tc.pass {
			t.Errorf("%s: binomialCheck(%d, %d, %.2f) = %q, want pass=%v", tc.name, tc.k, tc.n, tc.p, why, tc.pass)
		}
	}
	for _, c := range []struct {
		p    float64
		have int
	}{{lossPercent / 100.0, lossPackets}, {duplicatePercent / 100.0, statPackets}, {corruptPercent / 100.0, statPackets}} {
		if need := minSamples(c.p); c.have < need {
			t.Errorf("the lab sends %d echoes for a %.0f %% rate; the check needs %d", c.have, 100*c.p, need)
		}
	}
}
