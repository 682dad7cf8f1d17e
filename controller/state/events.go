package state

// Event types, as they appear in Event.type.
const (
	EventAgentRegistered = "agent.registered"
	EventFaultCreated    = "fault.created"
	EventFaultActive     = "fault.active"
	EventFaultReverting  = "fault.reverting"
	EventFaultReverted   = "fault.reverted"
	EventFaultFailed     = "fault.failed"
	// EventFaultUnconfirmed: the controller lost track of the fault's
	// outcome (invariant 8); the agent's report ends it later.
	EventFaultUnconfirmed = "fault.unconfirmed"
	EventFleetHalted      = "fleet.halted"
	EventFleetResumed     = "fleet.resumed"
	// EventExperimentCreated and EventExperimentEnded bracket an
	// experiment in the fleet's event log; its own timeline of events is
	// in the experiment record.
	EventExperimentCreated = "experiment.created"
	EventExperimentEnded   = "experiment.ended"
)

// Bounds of the replicated history. They keep snapshots and memory
// bounded however long the cluster lives.
const (
	// MaxEvents is how many of the latest events are kept.
	MaxEvents = 10000
	// MaxAppliedRequests is how many of the latest request IDs are
	// remembered for idempotency. A retry older than that many writes
	// would apply again; retries come within seconds, writes do not.
	MaxAppliedRequests = 10000
)
