package network

import (
	"strconv"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// BenchmarkPrivilegedNetwork_ApplyRevert measures the agent-side latency of
// applying and of reverting a targeted bandwidth fault (htb root, class,
// tbf, exclusion and target filters) on a veth in a test namespace.
func BenchmarkPrivilegedNetwork_ApplyRevert(b *testing.B) {
	testutil.RequirePrivileged(b)
	p := testutil.NewNSPair(b, 0)
	ex := ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, ResolvConf: "/nonexistent"}
	in := NewWithHandle(Config{Exclusions: ex}, p.HA)
	var applies, reverts []time.Duration
	for b.Loop() {
		t0 := time.Now()
		h, err := in.Apply(b.Context(), bandwidthFault("f-bench", p.LinkA, 1_000_000, "198.18.0.0/24"), time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := h.Revert(b.Context()); err != nil {
			b.Fatal(err)
		}
		applies, reverts = append(applies, t1.Sub(t0)), append(reverts, time.Since(t1))
	}
	reportPercentiles(b, "apply", applies)
	reportPercentiles(b, "revert", reverts)
}

// BenchmarkPrivilegedNetwork_TbfAccuracy reports the measured steady-state
// wire rate under a tbf limit as a percentage of the configured one.
func BenchmarkPrivilegedNetwork_TbfAccuracy(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, rate := range []uint64{125_000, 1_250_000, 12_500_000} { // 1, 10, 100 Mbit/s
		b.Run(mbit(rate), func(b *testing.B) {
			p := testutil.NewNSPair(b, 0)
			in := NewWithHandle(Config{Exclusions: ExclusionConfig{ResolvConf: "/nonexistent"}}, p.HA)
			h, err := in.Apply(b.Context(), bandwidthFault("f-acc", p.LinkA, rate), time.Now().Add(time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			var got float64
			for b.Loop() {
				got = measureUDP(b, p, time.Second)
			}
			b.ReportMetric(100*got/float64(rate), "%measured/configured")
			if err := h.Revert(b.Context()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func mbit(rate uint64) string { return strconv.FormatUint(rate*8/1_000_000, 10) + "Mbit" }

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	us := stats.Micros(ds)
	b.ReportMetric(stats.Median(us), name+"-p50-µs")
	b.ReportMetric(stats.Percentile(us, 99), name+"-p99-µs")
}
