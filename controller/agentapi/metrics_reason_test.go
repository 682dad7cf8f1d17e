package agentapi

import (
	"testing"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/metrics"
)

// TestEndReason_ControllerReasons: each reason the controller records
// has its own label (docs/metrics.md), so that rewording one cannot
// silently move its faults to "other".
func TestEndReason_ControllerReasons(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]string{
		ReasonDeadline:                       metrics.EndDeadline,
		ReasonLeaseExpired:                   metrics.EndLeaseExpired,
		ReasonDeadlineUnreachable:            metrics.EndDeadlineUnreachable,
		ReasonAwaitingReport:                 metrics.EndAwaitingReport,
		ReasonNoRecord:                       metrics.EndNoRecord,
		ReasonHeldWhileUnconfirmed:           metrics.EndHeldWhileUnknown,
		state.HaltReason:                     metrics.EndHalt,
		"not applied: agent is halted":       metrics.EndNotApplied,
		"revert requested by operator/alice": metrics.EndRevertRequested, // controlapi's RevertFault
		reasonRevertedAgent:                  metrics.EndOther,
	} {
		if got := metrics.EndReason(reason); got != want {
			t.Errorf("EndReason(%q) = %q, want %q", reason, got, want)
		}
	}
}
