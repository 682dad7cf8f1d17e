package limits

// MaxMessageBytes is the largest gRPC message the controller and turbctl
// send or receive (controller/grpc.go uses it). Every page of every list
// must fit in it, whatever the data (docs/limits.md).
const MaxMessageBytes = 4 << 20

// Bounds of identifiers and free text, in bytes.
const (
	// MaxID bounds agent, fault, command and server IDs. Agent IDs are a
	// certificate's common name, itself at most 64 bytes (RFC 5280's
	// ub-common-name); generated IDs are 14 bytes.
	MaxID = 128
	// MaxRequestID bounds client request IDs (turbctl sends 14 bytes; a
	// UUID is 36).
	MaxRequestID = 128
	// MaxActor bounds an identity "role/name" and an actor filter.
	MaxActor = 256
	// MaxReason bounds a halt or revert reason, an agent's error and a
	// fault's end reason: one line for people, not a document.
	MaxReason = 1024
	// MaxEventMessage bounds an event's message, which may quote a
	// reason and an actor.
	MaxEventMessage = MaxReason + MaxActor + 64
	// MaxAuditSummary bounds an audit record's summary (it may quote a
	// halt reason; the summary is cut, the reason itself is kept in the
	// halt status).
	MaxAuditSummary = 256
	// MaxAuditError bounds an audit record's error, the words of a
	// refusal that may quote an ID and a reason.
	MaxAuditError = MaxReason + 256
	// MaxName bounds short machine words: an action, an event type, a
	// fault kind, a kernel feature, a suffrage.
	MaxName = 64
	// MaxHostname is DNS's limit on a name (RFC 1035).
	MaxHostname = 253
	// MaxFact bounds the other host facts (os, arch, kernel release,
	// agent version).
	MaxFact = 128
	// MaxAddress bounds a host:port address (a DNS name and a port).
	MaxAddress = MaxHostname + 8
	// MaxPageToken bounds a page token; the server makes them, and they
	// hold one sort key (an ID, a time and an ID, or a number).
	MaxPageToken = 256
)

// Bounds of agents' labels: Kubernetes-sized keys and values, and enough
// of them to describe a host's place (zone, rack, role, service…).
const (
	MaxLabels     = 32
	MaxLabelKey   = 63
	MaxLabelValue = 255
	// MaxSelector bounds a label selector's text ("role=web,zone in
	// (a,b)"): room for a few dozen requirements, far less than a page.
	MaxSelector = 2048
	// MaxSelectIDs bounds an explicit list of agent IDs in one request.
	MaxSelectIDs = 1000
	// MaxPruneAgents bounds the departed agents one retention entry
	// removes; the leader proposes more at its next interval.
	MaxPruneAgents = 1000
)

// Bounds of what an agent reports.
const (
	// MaxGroupAgents bounds the agents one fault group may choose, whatever
	// the controller's --max-group-agents says (docs/groups.md).
	MaxGroupAgents = 5000
	// MaxGroupRefusedListed bounds the refused candidates a group lists
	// one by one; every refusal is counted in FaultGroup.refusals.
	MaxGroupRefusedListed = 1000
	// MaxGroupMembers bounds FaultGroup.members: the chosen, then the
	// refused that are listed.
	MaxGroupMembers = MaxGroupAgents + MaxGroupRefusedListed
	// MaxRefusal bounds a member's refusal and the one-line reason read
	// back from its fault.
	MaxRefusal = 128
	// MaxRefusalKinds bounds FaultGroup.refusals (distinct reasons).
	MaxRefusalKinds = 32
	// MaxFaultKinds bounds Capabilities.fault_kinds (the catalogue has 6).
	MaxFaultKinds = 16
	// MaxKernelFeatures bounds Capabilities.kernel_features.
	MaxKernelFeatures = 32
	// MaxHeldFaults bounds the fault statuses in one Hello or Heartbeat:
	// how many faults one agent can hold at a time is far lower (each
	// kind holds at most a few; the policy's default is 16), this is the
	// wire's sanity bound.
	MaxHeldFaults = 64
	// MaxNotes bounds a status's exclusions and disk notes, one line each.
	MaxNotes = 64
	// MaxNote bounds one such line.
	MaxNote = 256
	// MaxWatchedFilesystems bounds HostMetrics.filesystems: the agent
	// watches its state directory's filesystem and a few configured ones.
	MaxWatchedFilesystems = 16
	// MaxMetricSamples bounds the samples of one GetAgentMetrics answer
	// and so the series the leader keeps per agent (controller/hostseries):
	// an hour at one heartbeat a second, about 0.4 MiB at every bound.
	MaxMetricSamples = 3600
)

// Bounds of a fault spec. internal/faultspec checks them (with the
// values' own rules) as part of validation.
const (
	// MaxCores bounds cpu.cores and the length of cpu.pin_cpus.
	MaxCores = 4096
	// MaxCIDRs and MaxPorts bound the targeting lists.
	MaxCIDRs = 256
	MaxPorts = 64
	// MaxCIDR bounds one CIDR's text (an IPv6 CIDR is at most 43 bytes).
	MaxCIDR = 64
	// MaxExclusionNames bounds remove_default_exclusions.
	MaxExclusionNames = 16
	// MaxPathLen bounds disk paths (PATH_MAX).
	MaxPathLen = 4096
	// MaxInterfaceLen is IFNAMSIZ-1.
	MaxInterfaceLen = 15
)

// Page sizes of the list calls. A request with page size 0 gets the
// default; one above the maximum is refused. Each maximum is chosen so
// that a page of the largest records the bounds allow fits in
// MaxMessageBytes with room to spare; TestPagesFitMessageCap proves it
// and docs/limits.md shows the arithmetic.
const (
	DefaultPageAgents = 100
	MaxPageAgents     = 200
	DefaultPageFaults = 50
	MaxPageFaults     = 50
	DefaultPageEvents = 1000
	MaxPageEvents     = 1000
	DefaultPageAudit  = 100
	MaxPageAudit      = 1000
	DefaultPageGroups = 20
	MaxPageGroups     = 20
	DefaultPageServer = 100
	MaxPageServers    = 1000
	// Experiment summaries are small; a page of them is far below the cap.
	DefaultPageExperiments = 50
	MaxPageExperiments     = 200
)

// Bounds of an experiment (docs/experiments-runner.md). An experiment
// with every probe's samples is one record of the state and one
// GetExperiment answer, so these keep it well inside MaxMessageBytes:
// TestPagesFitMessageCap computes the worst case.
const (
	// MaxExperimentSpec bounds the experiment file's text.
	MaxExperimentSpec = 64 << 10
	// MaxExperimentTargets, MaxExperimentSteps and MaxExperimentProbes
	// bound the file's lists as the controller records them.
	MaxExperimentTargets = 16
	MaxExperimentSteps   = 64
	MaxExperimentProbes  = 32
	// MaxExperimentTargetAgents bounds the agents one target may choose.
	MaxExperimentTargetAgents = 500
	// MaxProbeSamples bounds the samples kept per probe: half an hour at
	// the default interval of one second. Later samples are counted, not
	// kept.
	MaxProbeSamples = 1800
	// MaxExperimentEvents bounds an experiment's timeline of events.
	MaxExperimentEvents = 256
	// MaxExperiments bounds the experiments the state keeps; the oldest
	// ended one is forgotten first.
	MaxExperiments = 100
)

// MaxUnknownBytes bounds the unknown fields one message may carry (fields
// of a newer client that this server does not know). They are never
// stored, but they are held in memory while the call runs.
const MaxUnknownBytes = 1024
