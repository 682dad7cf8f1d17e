// Package fleetsim runs thousands of simulated agents in one process, each
// speaking the real protocol to real controllers, so that fan-out, halt,
// failover and scale can be tested and measured without thousands of
// hosts (docs/fleetsim.md).
//
// A simulated agent is the real agent minus the host: its own mutual-TLS
// identity (a certificate minted from the test CA, an agent role and the
// agent's name, with its own P-256 key), the real session
// (agent/session: Hello with labels, facts and capabilities of every
// kind, heartbeats at the interval the controller's Welcome sets, lease
// renewals, Redirects followed, reconnects with the agent's backoff), the
// real inject.Manager (deadline timers, idempotent apply, halt, reports
// in heartbeats) and the real lease watchdog (agent/killswitch). Only the
// injectors differ: a recording injector per fault kind applies nothing
// and timestamps, on Go's monotonic clock, each Apply and each Revert it
// receives. So a fault is held until its deadline, a revert, a halt or a
// lease expiry exactly as on a host, and its CommandResult and heartbeat
// statuses are the ones a real agent sends.
//
// Each agent dials from its own loopback address (127.1.0.1, 127.1.0.2,
// …) unless Config.SharedSource is set: the controller caps connections
// per source address, as it should for real hosts.
//
// Measure from the simulator's clock, never from the controller's own
// signal: Fleet.TimeToApply and Fleet.TimeToRevert give, for a call
// started at a time the caller took, each fault's latency until its
// agent's injector saw it; Fleet.AttachTimes does the same for the first
// Welcome. internal/stats turns them into percentiles.
//
// Why the real agent's packages and not a hand-written protocol fake: a
// fake drifts from the agent it stands for (controllertest.FakeAgent
// stays, for tests that must send exactly what they choose); with the
// real session and Manager a simulated fleet behaves as a fleet does,
// including the lease that reverts faults when the controller is slow.
package fleetsim
