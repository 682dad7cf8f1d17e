package agentapi

import (
	"google.golang.org/protobuf/proto"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// withLastEffect returns the status to record for a fault that ended: the
// agent's end report st, with the measured effect of prev (the last status
// it reported while the fault ran) filled in where st carries none.
//
// Why: an end report may carry no measurement at all — an agent that
// reverted the fault at start-up knows only its journal, and an older
// agent zeroed its counters on revert — and `turbctl fault show` of an
// ended fault must still say what the fault achieved (docs/protocol.md,
// "Fault status"). What the agent does report always wins.
func withLastEffect(st, prev *turbulencev1.FaultStatus) *turbulencev1.FaultStatus {
	if st == nil || prev == nil {
		return st
	}
	out := proto.CloneOf(st)
	if out.GetMeasuredCpuPercent() == 0 {
		out.MeasuredCpuPercent = prev.GetMeasuredCpuPercent()
	}
	if out.GetResidentBytes() == 0 {
		out.ResidentBytes = prev.GetResidentBytes()
	}
	if out.GetWorkerPid() == 0 {
		out.WorkerPid = prev.GetWorkerPid()
	}
	if !out.GetDegraded() {
		out.Degraded = prev.GetDegraded()
	}
	if len(out.GetExclusions()) == 0 {
		out.Exclusions = prev.GetExclusions()
	}
	if out.GetNetwork() == nil || proto.Equal(out.GetNetwork(), &turbulencev1.NetworkStats{}) {
		out.Network = proto.CloneOf(prev.GetNetwork())
	}
	if out.GetDisk() == nil {
		out.Disk = proto.CloneOf(prev.GetDisk())
	}
	if out.GetAppliedAt() == nil {
		out.AppliedAt = prev.GetAppliedAt()
	}
	if out.GetDeadline() == nil {
		out.Deadline = prev.GetDeadline()
	}
	return out
}

// lastStatus is the latest status known for f: the one its agent last
// reported to this node while it held f, else the one recorded in raft.
func (h *Hub) lastStatus(f *turbulencev1.Fault) *turbulencev1.FaultStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.agents[f.GetAgentId()]; ok {
		if st, ok := a.last[f.GetId()]; ok {
			return st
		}
	}
	return f.GetStatus()
}

// forgetLast drops the last status of a fault whose end is recorded.
func (h *Hub) forgetLast(agentID, faultID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.agents[agentID]; ok {
		delete(a.last, faultID)
	}
}
