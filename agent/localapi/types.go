package localapi

import (
	"strings"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// DefaultPath is where the agent serves the socket unless configured
// otherwise. /run/turbulence-agent is the RuntimeDirectory that
// packaging/systemd/turbulence-agent.service creates with mode 0700.
const DefaultPath = "/run/turbulence-agent/agent.sock"

// Operations a Request may ask for.
const (
	OpStatus = "status"
	OpHalt   = "halt"
	OpResume = "resume"
)

// Request is what the client sends: one JSON line.
type Request struct {
	// Op is OpStatus, OpHalt or OpResume.
	Op string `json:"op"`
	// Reason is the operator's text for OpHalt; it is shown to whoever is
	// refused a fault while the halt holds.
	Reason string `json:"reason,omitempty"`
}

// Response is what the server answers: one JSON line.
type Response struct {
	// OK is false when the request failed; Error then says why.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Status is the agent's state after the operation.
	Status *Status `json:"status,omitempty"`
	// Reverted lists, for OpHalt, the faults the halt reverted.
	Reverted []Fault `json:"reverted,omitempty"`
	// WasHalted says, for OpResume, whether there was a local halt to lift.
	WasHalted bool `json:"was_halted,omitempty"`
}

// Status is the agent's state as the host's operator sees it.
type Status struct {
	// AgentID is the name in the agent's certificate.
	AgentID string `json:"agent_id"`
	// Hostname is this host's name, as refusals quote it.
	Hostname string `json:"hostname,omitempty"`
	// Controller is the address of the controller the agent has a session
	// with, or "" when it has none.
	Controller string `json:"controller"`
	// FleetHalted is the controller's halt (turbctl halt); only turbctl
	// resume lifts it.
	FleetHalted bool `json:"fleet_halted"`
	// LocallyHalted is this host's halt; only turbulence-agent resume
	// lifts it. LocalHaltReason and LocalHaltSince describe it.
	LocallyHalted   bool       `json:"locally_halted"`
	LocalHaltReason string     `json:"local_halt_reason,omitempty"`
	LocalHaltSince  *time.Time `json:"local_halt_since,omitempty"`
	// RecoveryIncomplete says what start-up recovery could not yet take
	// back from an earlier run; while it is set, new faults are refused.
	RecoveryIncomplete string `json:"recovery_incomplete,omitempty"`
	// ForeignMarks are marks of fault kinds that start-up recovery found
	// on the host and left alone because another agent (another state
	// directory) made them, or because it could not tell whose they are
	// (invariant 7), one line each.
	ForeignMarks []string `json:"foreign_marks,omitempty"`
	// Faults are the faults the agent holds, by ID.
	Faults []Fault `json:"faults"`
}

// Fault is one fault as the local status shows it.
type Fault struct {
	// ID is the fault ID the controller gave it.
	ID string `json:"id"`
	// Kind is the fault kind ("cpu"…); empty when unknown.
	Kind string `json:"kind,omitempty"`
	// State is "active", "reverted", "failed"… (the FaultState name in
	// lower case).
	State string `json:"state"`
	// Deadline is when the agent reverts it by itself (invariant 1).
	Deadline *time.Time `json:"deadline,omitempty"`
	// AppliedAt is when the injector finished applying it.
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Measured effect, by kind; zero when not measured.
	MeasuredCPUPercent float64 `json:"measured_cpu_percent,omitempty"`
	ResidentBytes      uint64  `json:"resident_bytes,omitempty"`
	WorkerPID          int32   `json:"worker_pid,omitempty"`
	Degraded           bool    `json:"degraded,omitempty"`
	// Reason is why the fault ended, for ended faults.
	Reason string `json:"reason,omitempty"`
}

// FaultFromStatus converts the agent's wire status of a fault of kind.
func FaultFromStatus(st *turbulencev1.FaultStatus, kind string) Fault {
	f := Fault{
		ID:                 st.GetFaultId(),
		Kind:               kind,
		State:              stateName(st.GetState()),
		MeasuredCPUPercent: st.GetMeasuredCpuPercent(),
		ResidentBytes:      st.GetResidentBytes(),
		WorkerPID:          st.GetWorkerPid(),
		Degraded:           st.GetDegraded(),
		Reason:             st.GetReason(),
	}
	if d := st.GetDeadline(); d != nil {
		t := d.AsTime()
		f.Deadline = &t
	}
	if a := st.GetAppliedAt(); a != nil {
		t := a.AsTime()
		f.AppliedAt = &t
	}
	return f
}

// stateName turns FAULT_STATE_ACTIVE into "active".
func stateName(s turbulencev1.FaultState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "FAULT_STATE_"))
}
