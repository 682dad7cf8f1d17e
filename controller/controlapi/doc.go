// Package controlapi serves ControlService, the API people and scripts
// (turbctl) use: agents, faults, halt and resume, and the event log.
//
// Writes go through raft; reads come from this node's replicated state,
// overlaid with the leader's soft state (is the agent connected, what did
// it last report about a fault it holds).
//
// Authorization comes from the caller's verified certificate
// (tlsutil.PeerIdentity): admin and operator may do everything, viewer
// may only read, and any of the three may pull the kill switch (Halt),
// because stopping an experiment must never wait for someone with more
// rights (invariant 5). Agent and controller certificates are refused.
//
// Invariant 6: ApplyFault validates everything it can (the spec with
// faultspec.Validate, the target agent, its capabilities, the halt flag)
// before it proposes anything; a refused request leaves no trace in raft.
//
// Errors cross the wire through one mapper (errors.go) that matches
// sentinels with errors.Is/errors.As.
//
// Audit (audit.go): every write goes through propose, which puts an Audit
// (action, one-line summary) in the same raft entry as the command, so a
// write and its audit record commit together or not at all. ListAudit
// reads the log, newest first, for any human role. ProposeAuditRecord
// records the writes that are not FSM commands (clusterapi's membership
// changes), committed before the change is made.
//
// Rate limits (ratelimit.go): a token bucket per caller identity on every
// write but Halt (invariant 5), 20 calls a second with bursts of 40 by
// default. The limit is per controller node, not per cluster: each node
// counts the calls that reach it and a forwarded call is not counted
// again on the leader, so a caller spreading its calls over a 3-node
// cluster gets up to three times the rate. That is deliberate: the limit
// is a brake on runaway scripts (they would fill the raft and audit logs),
// not a quota, and a cluster-wide count would cost a raft round trip per
// call. A refusal is ResourceExhausted with a QuotaFailure detail naming
// the identity and the limit and a RetryInfo with the pause; nothing is
// proposed, and turbctl exits 7. docs/security.md has the whole model.
package controlapi
