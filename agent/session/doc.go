// Package session is the agent's side of AgentService.Connect: one
// long-lived, outbound, mutual-TLS gRPC stream to the controller leader
// (docs/protocol.md). The agent listens on no TCP port (docs/design.md).
//
// Run dials each configured controller address in turn, sends Hello and
// waits for Welcome (or Redirect, which makes the leader's address the next
// one dialled). Within a session three goroutines cooperate:
//
//   - the receiver reads ControllerMessages; every one renews the lease
//     (invariant 2, protocol §6). HaltAgent and ResumeAgent are carried out
//     right there, so that a halt overtakes any queued command (invariant 5);
//   - the handler carries out ApplyFault and RevertFault one at a time, in
//     the order received, through inject.Manager, and queues their
//     CommandResults;
//   - the sender is the ONLY goroutine that calls Send (gRPC streams are
//     not safe for concurrent Send): queued results, heartbeats every
//     heartbeat_interval, and flush requests from Flush.
//
// Heartbeats carry every held fault and every fault that ended and was not
// yet carried by a heartbeat that was sent (inject.Manager.Report /
// AckEnded), so an end is reported even across a reconnect.
//
// A lost session is followed at once by the next configured controller;
// only a whole round without a leader waits, with capped exponential
// backoff and jitter (100 ms .. 5 s) so that a fleet does not stampede a
// new leader. A Redirect to an address that failed in the same round is
// not followed (Run says why).
// Faults are untouched by reconnects; only the lease decides (protocol §6).
package session
