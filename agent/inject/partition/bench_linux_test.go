package partition

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkPrivilegedPartition_ApplyRevert measures the agent-side latency
// of creating a partition table (one batch) and of deleting it.
func BenchmarkPrivilegedPartition_ApplyRevert(b *testing.B) {
	testutil.RequirePrivileged(b)
	p := testutil.NewNSPair(b, 0)
	in := NewInNetNS(Config{Exclusions: network.ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, ResolvConf: "/nonexistent"}}, int(p.A))
	var applies, reverts []time.Duration
	for b.Loop() {
		t0 := time.Now()
		h, err := in.Apply(b.Context(), partitionFault("f-bench", turbulencev1.Direction_DIRECTION_BOTH, "198.18.0.0/24"), time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := h.Revert(b.Context()); err != nil {
			b.Fatal(err)
		}
		applies, reverts = append(applies, t1.Sub(t0)), append(reverts, time.Since(t1))
	}
	for name, ds := range map[string][]time.Duration{"apply": applies, "revert": reverts} {
		us := stats.Micros(ds)
		b.ReportMetric(stats.Median(us), name+"-p50-µs")
		b.ReportMetric(stats.Percentile(us, 99), name+"-p99-µs")
	}
}
