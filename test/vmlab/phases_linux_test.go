package vmlab_test

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The checks and the report of the phases after delay and loss: jitter,
// duplicate, corrupt, rate (netem and tbf), targeting and the deadline.
// Each is a fault of its own in the same boot; the guest measures, the
// host judges.

// quantile is the q-quantile of sorted xs, linearly interpolated.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

type spread struct{ n, mean, median, iqr, std float64 }

func spreadOf(xs []float64) spread {
	s := slices.Clone(xs)
	sort.Float64s(s)
	var sum, sq float64
	for _, x := range s {
		sum += x
	}
	mean := sum / float64(len(s))
	for _, x := range s {
		sq += (x - mean) * (x - mean)
	}
	return spread{n: float64(len(s)), mean: mean, median: quantile(s, 0.5),
		iqr: quantile(s, 0.75) - quantile(s, 0.25), std: math.Sqrt(sq / float64(len(s)-1))}
}

// measuredBits is the throughput the answers to a rate probe arrived at.
func measuredBits(r vmlab.RateResult) float64 {
	if r.Probe.SpanMS <= 0 {
		return 0
	}
	return float64(r.Probe.SpanAnswers*r.WireLen*8) / (r.Probe.SpanMS / 1000)
}

// offeredBits is the rate the guest sent at.
func offeredBits(r vmlab.RateResult) float64 {
	if r.Probe.SendMS <= 0 {
		return 0
	}
	return float64(r.Probe.Sent*r.WireLen*8) / (r.Probe.SendMS / 1000)
}

// jitterBaseline is the median RTT of the probe run with no fault just
// before the jitter phase, measured the same way.
func jitterBaseline(res vmlab.Result) float64 {
	if p := res.JitterBaseline; p != nil && len(p.RTTs) > 0 {
		return spreadOf(p.RTTs).median
	}
	return math.NaN()
}

// logPhases prints configured against measured, as a table, for whatever
// the guest got to.
func logPhases(t *testing.T, res vmlab.Result) {
	t.Helper()
	var b strings.Builder
	row := func(what, configured, measured string) {
		fmt.Fprintf(&b, "\n  %-28s | %-26s | %s", what, configured, measured)
	}
	row("phase", "configured", "measured")
	row("delay (RTT over baseline)", fmt.Sprintf("%d ms", delayMS), fmt.Sprintf("%.2f ms (median of %d)", res.DelayedMS-res.BaselineMS, rttSamples))
	if res.LossSent > 0 {
		row("loss", fmt.Sprintf("%d %%", lossPercent), fmt.Sprintf("%.1f %% of %d", 100*float64(res.LossSent-res.LossReceived)/float64(res.LossSent), res.LossSent))
	}
	if p := res.Jitter; p != nil && len(p.RTTs) > 1 {
		s, base := spreadOf(p.RTTs), jitterBaseline(res)
		row("jitter: mean over baseline", fmt.Sprintf("%d ms", jitterDelayMS), fmt.Sprintf("%.2f ms (median %.2f, n=%.0f, baseline %.2f)", s.mean-base, s.median-base, s.n, base))
		row("jitter: IQR", fmt.Sprintf("%d ms (uniform ±%d)", jitterMS, jitterMS), fmt.Sprintf("%.2f ms", s.iqr))
		row("jitter: std dev", fmt.Sprintf("%.2f ms (%d/√3)", jitterMS/math.Sqrt(3), jitterMS), fmt.Sprintf("%.2f ms (sender at most %.1f ms late; kernel rx timestamps %v)", s.std, p.MaxLateMS, p.KernelTimestamps))
	}
	if p := res.Duplicate; p != nil {
		row("duplicate", fmt.Sprintf("%d %%", duplicatePercent), fmt.Sprintf("%.1f %% (%d extra of %d; %d unanswered, %d bad)",
			100*float64(p.Duplicates)/float64(p.Sent), p.Duplicates, p.Sent, p.Sent-p.Answered, p.Bad))
	}
	if p := res.Corrupt; p != nil {
		row("corrupt", fmt.Sprintf("%d %%", corruptPercent), fmt.Sprintf("%.1f %% (%d of %d hurt: %d wrong payload)",
			100*float64(p.Sent-p.Answered)/float64(p.Sent), p.Sent-p.Answered, p.Sent, p.Bad))
	}
	for _, r := range res.Rate {
		row("rate, "+r.Kind, fmt.Sprintf("%.3f Mbit/s", rateBits/1e6), fmt.Sprintf("%.3f Mbit/s (%d answers over %.0f ms; offered %.3f; sender at most %.1f ms late)",
			measuredBits(r)/1e6, r.Probe.SpanAnswers, r.Probe.SpanMS, offeredBits(r)/1e6, r.Probe.MaxLateMS))
	}
	if res.TargetedMS > 0 {
		row("targeting: .1/32 (targeted)", fmt.Sprintf("+%d ms", delayMS), fmt.Sprintf("+%.2f ms (%.2f, baseline %.2f)", res.TargetedMS-res.BaselineMS, res.TargetedMS, res.BaselineMS))
		row("targeting: .2 (not)", "+0 ms", fmt.Sprintf("%+.2f ms (%.2f, baseline %.2f)", res.UntargetedMS-res.Peer2BaselineMS, res.UntargetedMS, res.Peer2BaselineMS))
	}
	if res.DeadlineGoneMS > 0 || res.DeadlineReason != "" {
		row("deadline (Manager)", fmt.Sprintf("%d ms", deadlineMS), fmt.Sprintf("tree back %.0f ms after Apply began; reason %q; delay under it %.2f ms",
			res.DeadlineGoneMS, res.DeadlineReason, res.DeadlineDelayedMS))
	}
	t.Log("configured vs measured:" + b.String())
}

// checkPhases asserts on the phases after delay and loss.
func checkPhases(t *testing.T, res vmlab.Result) {
	t.Helper()
	wantDuring := []string{"htb 7400:0 root", "netem 7401:0 7400:1"}
	for _, phase := range []string{"jitter", "duplicate", "corrupt", "rate-netem", "rate-tbf", "targeting", "deadline"} {
		got, ok := res.QdiscsAfterPhase[phase]
		if !ok || !slices.Equal(got, res.QdiscsBefore) {
			t.Errorf("qdiscs after the %s fault = %q, want the original %q", phase, got, res.QdiscsBefore)
		}
	}

	// Jitter: mean within 10 % or 2 ms of the delay (over the baseline);
	// the interquartile range within 25 % of the jitter.
	if p := res.Jitter; p == nil || len(p.RTTs) < 200 {
		t.Errorf("jitter: %v, want at least 200 RTT samples", p)
	} else {
		s := spreadOf(p.RTTs)
		if added, tol := s.mean-jitterBaseline(res), math.Max(0.1*jitterDelayMS, 2); math.Abs(added-jitterDelayMS) > tol {
			t.Errorf("jitter: %d ms ± %d ms added %.2f ms on average, want %d ± %.0f", jitterDelayMS, jitterMS, added, jitterDelayMS, tol)
		}
		if math.Abs(s.iqr-jitterMS) > 0.25*jitterMS {
			t.Errorf("jitter: %d ms ± %d ms gave an RTT interquartile range of %.2f ms, want %d ± %.0f", jitterDelayMS, jitterMS, s.iqr, jitterMS, 0.25*jitterMS)
		}
	}

	// Duplicate: every echo answered, the extra answers binomial(n, p).
	if p := res.Duplicate; p == nil || p.Sent == 0 {
		t.Errorf("duplicate: %+v, want echoes", p)
	} else {
		if why := binomialCheck(p.Duplicates, p.Sent, duplicatePercent/100.0); why != "" {
			t.Errorf("duplicate %d %%: extra answers to echoes: %s", duplicatePercent, why)
		}
		if p.Answered != p.Sent || p.Bad != 0 {
			t.Errorf("duplicate: %d of %d echoes answered, %d wrong answers: want all answered, none wrong", p.Answered, p.Sent, p.Bad)
		}
	}
	// Corrupt: a flipped bit fails a checksum (the receiver drops the
	// datagram) or the payload check; either way the echo goes unanswered.
	if p := res.Corrupt; p == nil || p.Sent == 0 {
		t.Errorf("corrupt: %+v, want echoes", p)
	} else {
		if why := binomialCheck(p.Sent-p.Answered, p.Sent, corruptPercent/100.0); why != "" {
			t.Errorf("corrupt %d %%: echoes hurt: %s", corruptPercent, why)
		}
		if p.Duplicates != 0 {
			t.Errorf("corrupt: %d duplicate answers, want none", p.Duplicates)
		}
	}

	// Rate: what got through within 10 % of the limit, offered faster.
	kinds := map[string]bool{}
	for _, r := range res.Rate {
		kinds[r.Kind] = true
		got := measuredBits(r)
		if math.Abs(got-rateBits) > 0.1*rateBits || r.Probe.SpanAnswers < 200 {
			t.Errorf("rate %s: %.3f Mbit/s over %d answers, want %.3f ± 10 %% over at least 200", r.Kind, got/1e6, r.Probe.SpanAnswers, rateBits/1e6)
		}
		if off := offeredBits(r); off < 1.1*rateBits {
			t.Errorf("rate %s: the guest offered only %.3f Mbit/s: the limit was not what held it back", r.Kind, off/1e6)
		}
		if !slices.ContainsFunc(r.Qdiscs, func(l string) bool { return strings.HasPrefix(l, r.Kind+" ") }) {
			t.Errorf("rate %s: qdiscs %q, want a %s qdisc", r.Kind, r.Qdiscs, r.Kind)
		}
	}
	if !kinds["netem"] || !kinds["tbf"] {
		t.Errorf("rate phases run: %v, want netem and tbf", kinds)
	}

	// Targeting: the targeted peer delayed, its neighbour on the same
	// bridge and interface not.
	if res.TargetedMS == 0 || res.UntargetedMS == 0 {
		t.Errorf("targeting: no measurement (targeted %.2f ms, untargeted %.2f ms)", res.TargetedMS, res.UntargetedMS)
	} else {
		if added := res.TargetedMS - res.BaselineMS; math.Abs(added-delayMS) > math.Max(0.1*delayMS, 2) {
			t.Errorf("targeting: the targeted peer's RTT rose by %.2f ms, want %d ± 10 %%", added, delayMS)
		}
		if res.UntargetedMS > res.Peer2BaselineMS+5 {
			t.Errorf("targeting: the untargeted peer's RTT is %.2f ms (baseline %.2f ms): the fault hurt traffic it does not target", res.UntargetedMS, res.Peer2BaselineMS)
		}
	}

	// Deadline: the Manager took the fault back by itself, on time.
	if !slices.Equal(res.DeadlineQdiscs, wantDuring) {
		t.Errorf("deadline: qdiscs while the fault ran = %q, want %q", res.DeadlineQdiscs, wantDuring)
	}
	if res.DeadlineDelayedMS < 0.9*delayMS {
		t.Errorf("deadline: RTT under the fault %.2f ms, want about %d ms: the fault did not take effect", res.DeadlineDelayedMS, delayMS)
	}
	// The timer starts inside Manager.Apply, after the clock the guest
	// started, so the tree cannot be back before deadlineMS; the revert
	// itself takes tens of ms on tcg.
	if res.DeadlineGoneMS < deadlineMS || res.DeadlineGoneMS > deadlineMS+500 {
		t.Errorf("deadline: the tree was back %.0f ms after Apply began, want within [%d, %d] ms", res.DeadlineGoneMS, deadlineMS, deadlineMS+500)
	}
	if res.DeadlineReason != "deadline" || res.DeadlineHeld != 0 {
		t.Errorf("deadline: the Manager recorded reason %q and still holds %d faults, want %q and none", res.DeadlineReason, res.DeadlineHeld, "deadline")
	}
}
