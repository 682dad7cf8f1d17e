package limits

import "google.golang.org/protobuf/reflect/protoreflect"

// Shorthands for the table.
func text(n int) Bound        { return Bound{Max: n} }
func list(n int) Bound        { return Bound{Max: n} }
func texts(n, each int) Bound { return Bound{Max: n, Elem: each} }

var labels = Bound{Max: MaxLabels, Key: MaxLabelKey, Value: MaxLabelValue}

// table is every bound, by field. docs/limits.md lists the same values
// with the reasons; keep the two together.
var table = map[protoreflect.FullName]Bound{
	// ControlService requests.
	"turbulence.v1.ListAgentsRequest.page_token":  text(MaxPageToken),
	"turbulence.v1.ListAgentsRequest.selector":    text(MaxSelector),
	"turbulence.v1.ListAgentsRequest.ids":         texts(MaxSelectIDs, MaxID),
	"turbulence.v1.GetAgentRequest.id":            text(MaxID),
	"turbulence.v1.ApplyFaultRequest.request_id":  text(MaxRequestID),
	"turbulence.v1.ApplyFaultRequest.agent_id":    text(MaxID),
	"turbulence.v1.ListFaultsRequest.agent_id":    text(MaxID),
	"turbulence.v1.ListFaultsRequest.kind":        text(MaxName),
	"turbulence.v1.ListFaultsRequest.page_token":  text(MaxPageToken),
	"turbulence.v1.GetFaultRequest.id":            text(MaxID),
	"turbulence.v1.RevertFaultRequest.request_id": text(MaxRequestID),
	"turbulence.v1.RevertFaultRequest.id":         text(MaxID),
	"turbulence.v1.HaltRequest.request_id":        text(MaxRequestID),
	"turbulence.v1.HaltRequest.reason":            text(MaxReason),
	"turbulence.v1.ResumeRequest.request_id":      text(MaxRequestID),
	"turbulence.v1.ListEventsRequest.page_token":  text(MaxPageToken),
	"turbulence.v1.ListEventsRequest.agent_id":    text(MaxID),
	"turbulence.v1.ListEventsRequest.type":        text(MaxName),
	"turbulence.v1.ListAuditRequest.actor":        text(MaxActor),
	"turbulence.v1.ListAuditRequest.page_token":   text(MaxPageToken),
	"turbulence.v1.ListAuditRequest.action":       text(MaxName),

	// Fault specs (internal/faultspec checks the values too).
	"turbulence.v1.CPUSpec.pin_cpus":                        list(MaxCores),
	"turbulence.v1.DiskFillSpec.path":                       text(MaxPathLen),
	"turbulence.v1.DiskIOSpec.path":                         text(MaxPathLen),
	"turbulence.v1.NetworkSpec.interface":                   text(MaxInterfaceLen),
	"turbulence.v1.TrafficTarget.cidrs":                     texts(MaxCIDRs, MaxCIDR),
	"turbulence.v1.TrafficTarget.ports":                     list(MaxPorts),
	"turbulence.v1.TrafficTarget.remove_default_exclusions": texts(MaxExclusionNames, MaxName),

	// ControlService records and pages.
	"turbulence.v1.Agent.id":                           text(MaxID),
	"turbulence.v1.Agent.labels":                       labels,
	"turbulence.v1.Fault.id":                           text(MaxID),
	"turbulence.v1.Fault.agent_id":                     text(MaxID),
	"turbulence.v1.Fault.reason":                       text(MaxReason),
	"turbulence.v1.Fault.created_by":                   text(MaxActor),
	"turbulence.v1.HaltStatus.reason":                  text(MaxReason),
	"turbulence.v1.HaltStatus.by":                      text(MaxActor),
	"turbulence.v1.Event.type":                         text(MaxName),
	"turbulence.v1.Event.agent_id":                     text(MaxID),
	"turbulence.v1.Event.fault_id":                     text(MaxID),
	"turbulence.v1.Event.message":                      text(MaxEventMessage),
	"turbulence.v1.AuditEntry.actor":                   text(MaxActor),
	"turbulence.v1.AuditEntry.request_id":              text(MaxRequestID),
	"turbulence.v1.AuditEntry.action":                  text(MaxName),
	"turbulence.v1.AuditEntry.summary":                 text(MaxAuditSummary),
	"turbulence.v1.AuditEntry.error":                   text(MaxAuditError),
	"turbulence.v1.ListAgentsResponse.agents":          list(MaxPageAgents),
	"turbulence.v1.ListAgentsResponse.next_page_token": text(MaxPageToken),
	"turbulence.v1.ListFaultsResponse.faults":          list(MaxPageFaults),
	"turbulence.v1.ListFaultsResponse.next_page_token": text(MaxPageToken),
	"turbulence.v1.ListEventsResponse.events":          list(MaxPageEvents),
	"turbulence.v1.ListEventsResponse.next_page_token": text(MaxPageToken),
	"turbulence.v1.ListAuditResponse.entries":          list(MaxPageAudit),
	"turbulence.v1.ListAuditResponse.next_page_token":  text(MaxPageToken),

	// ClusterService.
	"turbulence.v1.ListServersRequest.page_token":       text(MaxPageToken),
	"turbulence.v1.JoinRequest.id":                      text(MaxID),
	"turbulence.v1.JoinRequest.raft_address":            text(MaxAddress),
	"turbulence.v1.JoinRequest.grpc_address":            text(MaxAddress),
	"turbulence.v1.RemoveServerRequest.id":              text(MaxID),
	"turbulence.v1.Server.id":                           text(MaxID),
	"turbulence.v1.Server.raft_address":                 text(MaxAddress),
	"turbulence.v1.Server.grpc_address":                 text(MaxAddress),
	"turbulence.v1.Server.suffrage":                     text(MaxName),
	"turbulence.v1.ListServersResponse.servers":         list(MaxPageServers),
	"turbulence.v1.ListServersResponse.answered_by":     text(MaxID),
	"turbulence.v1.ListServersResponse.next_page_token": text(MaxPageToken),

	// The agents' stream: what an agent sends.
	"turbulence.v1.Hello.agent_id":               text(MaxID),
	"turbulence.v1.Hello.labels":                 labels,
	"turbulence.v1.Hello.faults":                 list(MaxHeldFaults),
	"turbulence.v1.HostFacts.hostname":           text(MaxHostname),
	"turbulence.v1.HostFacts.os":                 text(MaxFact),
	"turbulence.v1.HostFacts.arch":               text(MaxFact),
	"turbulence.v1.HostFacts.kernel":             text(MaxFact),
	"turbulence.v1.HostFacts.agent_version":      text(MaxFact),
	"turbulence.v1.Capabilities.fault_kinds":     texts(MaxFaultKinds, MaxName),
	"turbulence.v1.Capabilities.kernel_features": texts(MaxKernelFeatures, MaxName),
	"turbulence.v1.Heartbeat.faults":             list(MaxHeldFaults),
	"turbulence.v1.CommandResult.command_id":     text(MaxID),
	"turbulence.v1.CommandResult.fault_id":       text(MaxID),
	"turbulence.v1.CommandResult.error":          text(MaxReason),
	"turbulence.v1.FaultStatus.fault_id":         text(MaxID),
	"turbulence.v1.FaultStatus.reason":           text(MaxReason),
	"turbulence.v1.FaultStatus.exclusions":       texts(MaxNotes, MaxNote),
	"turbulence.v1.DiskStats.mount_point":        text(MaxPathLen),
	"turbulence.v1.DiskStats.notes":              texts(MaxNotes, MaxNote),

	// The agents' stream: what the controller sends.
	"turbulence.v1.Redirect.leader_address": text(MaxAddress),
	"turbulence.v1.ApplyFault.command_id":   text(MaxID),
	"turbulence.v1.RevertFault.command_id":  text(MaxID),
	"turbulence.v1.RevertFault.fault_id":    text(MaxID),
	"turbulence.v1.RevertFault.reason":      text(MaxReason),
	"turbulence.v1.HaltAgent.reason":        text(MaxReason),

	// Raft log entries.
	"turbulence.raft.v1.LogEntry.request_id":  text(MaxRequestID),
	"turbulence.raft.v1.LogEntry.actor":       text(MaxActor),
	"turbulence.raft.v1.Audit.action":         text(MaxName),
	"turbulence.raft.v1.Audit.summary":        text(MaxAuditSummary),
	"turbulence.raft.v1.UpdateFault.fault_id": text(MaxID),
	"turbulence.raft.v1.UpdateFault.reason":   text(MaxReason),
	"turbulence.raft.v1.SetHalt.reason":       text(MaxReason),
}
