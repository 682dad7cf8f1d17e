package limits

import (
	"strings"
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestFit_MakesAnAgentMessagePassCheck: an agent's heartbeat whose reasons,
// exclusions and list of faults run over their bounds passes Check once
// fitted, and keeps what was within bounds.
func TestFit_MakesAnAgentMessagePassCheck(t *testing.T) {
	t.Parallel()
	hb := &turbulencev1.Heartbeat{}
	for range MaxHeldFaults + 5 {
		hb.Faults = append(hb.Faults, &turbulencev1.FaultStatus{
			FaultId:    "f-1",
			Reason:     strings.Repeat("revert failed: netlink: device busy; ", 200),
			Exclusions: []string{"ssh port 22", strings.Repeat("x", MaxNote+1)},
		})
	}
	msg := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: hb}}
	if Check(msg) == nil {
		t.Fatal("the oversized heartbeat passes Check before Fit")
	}
	Fit(msg)
	if err := Check(msg); err != nil {
		t.Fatalf("after Fit: %v", err)
	}
	st := hb.GetFaults()[0]
	if len(hb.GetFaults()) != MaxHeldFaults || st.GetFaultId() != "f-1" || st.GetExclusions()[0] != "ssh port 22" ||
		!strings.HasPrefix(st.GetReason(), "revert failed: netlink: device busy;") || !strings.HasSuffix(st.GetReason(), "…") {
		t.Errorf("after Fit: %d faults, first %v", len(hb.GetFaults()), st)
	}
}
