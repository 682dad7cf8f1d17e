package agent

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// TestEndReason_AgentReasons: each reason an agent's fault can end with
// has the label docs/metrics.md gives it, so that rewording one cannot
// silently move its faults to "other".
func TestEndReason_AgentReasons(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]string{
		inject.ReasonDeadline:                  metrics.EndDeadline,
		inject.ReasonRevertRequested:           metrics.EndRevertRequested,
		inject.ReasonHalt:                      metrics.EndHalt,
		inject.ReasonLeaseExpired:              metrics.EndLeaseExpired,
		inject.ReasonAgentStopping:             metrics.EndAgentStopping,
		inject.ReasonWorkerExited + "signal 9": metrics.EndWorkerExited,
		inject.ReasonLocalHalt + ": drill":     metrics.EndLocalHalt,
		guardian.ReasonDeadline:                metrics.EndDeadline,
		guardian.ReasonLease:                   metrics.EndLeaseExpired,
		worker.ErrLeaseExpired.Error():         metrics.EndLeaseExpired,
		ReasonRecovered:                        metrics.EndAgentRestarted,
		ReasonCleanup:                          metrics.EndAgentRestarted,
	} {
		if got := metrics.EndReason(reason); got != want {
			t.Errorf("EndReason(%q) = %q, want %q", reason, got, want)
		}
	}
}

// TestAgentMetrics_Lateness: a deadline end observes how late it came,
// an early one 0, and an end for another reason none.
func TestAgentMetrics_Lateness(t *testing.T) {
	t.Parallel()
	am := newAgentMetrics([]string{"cpu"})
	reg := metrics.NewRegistry()
	reg.MustRegister(am.collectors()...)
	d := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	am.FaultEnded("cpu", inject.ReasonDeadline, d, d.Add(30*time.Millisecond))
	am.FaultEnded("cpu", inject.ReasonDeadline, d, d.Add(-100*time.Millisecond))
	am.FaultEnded("cpu", inject.ReasonHalt, d, d.Add(time.Hour))
	if n, _ := testutil.MetricValue(t, reg, metricRevertLateness, map[string]string{"kind": "cpu"}); n != 2 {
		t.Errorf("lateness observations = %v, want 2 (the two deadline ends)", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == metricRevertLateness {
			if sum := mf.GetMetric()[0].GetHistogram().GetSampleSum(); sum < 0.029 || sum > 0.031 {
				t.Errorf("lateness sum = %v s, want 0.03 (30 ms late + an early end counted as 0)", sum)
			}
		}
	}
	if n, _ := testutil.MetricValue(t, reg, metricFaultsEnded, map[string]string{"kind": "cpu", "reason": metrics.EndHalt}); n != 1 {
		t.Errorf("ended{halt} = %v, want 1", n)
	}
}
