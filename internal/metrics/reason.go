package metrics

import "strings"

// Fault end reasons as metric labels. The reasons the agent and the
// controller record are sentences for people ("revert requested by
// operator/alice", "worker exited: signal: killed"); a label must come
// from a small fixed set, or every distinct sentence becomes a series.
const (
	EndDeadline            = "deadline"
	EndRevertRequested     = "revert_requested"
	EndHalt                = "halt"
	EndLocalHalt           = "local_halt"
	EndLeaseExpired        = "lease_expired"
	EndAgentStopping       = "agent_stopping"
	EndAgentRestarted      = "agent_restarted"
	EndWorkerExited        = "worker_exited"
	EndNotApplied          = "not_applied"
	EndHeldWhileUnknown    = "held_while_unconfirmed"
	EndDeadlineUnreachable = "deadline_unreachable"
	EndAwaitingReport      = "awaiting_report"
	EndNoRecord            = "no_record"
	EndFailed              = "failed"
	EndOther               = "other"
)

// endPrefixes maps the start of a recorded reason to its label, most
// specific first. The sentences are defined by agent/inject,
// agent/killswitch, agent/guardian, agent (recover.go),
// controller/state and controller/agentapi; their tests check that each
// of their reasons maps to the label documented in docs/metrics.md, so a
// reworded reason cannot silently fall into "other".
var endPrefixes = []struct{ prefix, label string }{
	{"deadline passed while", EndDeadlineUnreachable},
	{"deadline", EndDeadline},
	{"revert requested", EndRevertRequested},
	{"local halt", EndLocalHalt},
	{"halt", EndHalt},
	{"fleet halted", EndHalt},
	{"lease expired", EndLeaseExpired},
	{"agent stopping", EndAgentStopping},
	{"agent restarted", EndAgentRestarted},
	{"worker exited", EndWorkerExited},
	{"not applied", EndNotApplied},
	{"agent still held it", EndHeldWhileUnknown},
	{"agent reconnected without it", EndAwaitingReport},
	{"outcome unknown", EndNoRecord},
}

// EndReason returns the label of a recorded end (or UNCONFIRMED) reason:
// one of the End* constants, EndOther for a reason it does not know.
func EndReason(reason string) string {
	for _, p := range endPrefixes {
		if strings.HasPrefix(reason, p.prefix) {
			return p.label
		}
	}
	return EndOther
}
