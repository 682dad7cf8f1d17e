package agentapi_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestSession_MessageOverBoundsEndsIt: a heartbeat or result over its
// bounds (docs/limits.md) ends the session with InvalidArgument naming
// the field, before anything of it reaches raft; the agent may reconnect.
func TestSession_MessageOverBoundsEndsIt(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	srv.ConnectAgent(t, nil) // registers the agent so that a fault can be applied
	f := applyCPU(t, admin)
	tests := []struct {
		name  string
		msg   *turbulencev1.AgentMessage
		field string
	}{
		{"heartbeat with a 1 MB reason", &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{
			SentAt: timestamppb.Now(),
			Faults: []*turbulencev1.FaultStatus{{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, Reason: strings.Repeat("x", 1<<20)}},
		}}}, "heartbeat.faults[0].reason"},
		{"result with a 1 MB error", &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: &turbulencev1.CommandResult{
			CommandId: "c-1", FaultId: f.GetId(), Error: strings.Repeat("x", 1<<20),
		}}}, "result.error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := srv.ConnectAgent(t, nil)
			before := srv.Controller.LastRaftIndex()
			a.Send(t, tt.msg)
			var err error
			for err == nil {
				_, err = a.Recv(wait)
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.field+": is 1048576 bytes long") {
				t.Fatalf("session ended with %v, want InvalidArgument naming %s", err, tt.field)
			}
			if after := srv.Controller.LastRaftIndex(); after != before {
				t.Errorf("raft log moved from %d to %d for a refused message", before, after)
			}
			got, err := admin.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: f.GetId()})
			if err != nil || len(got.GetReason()) > 1024 || len(got.GetStatus().GetReason()) > 1024 {
				t.Errorf("fault after the refusal = %v, %v; want it untouched", got, err)
			}
		})
	}
}
