package controlapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func cpuSpec(load uint32, d *durationpb.Duration) *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{Duration: d, Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: load}}}
}

// newServerWithAgent starts a controller with the PKI's agent registered
// (connected, supporting cpu only).
func newServerWithAgent(t *testing.T, configure func(*controller.Config)) (*controllertest.Server, *controllertest.FakeAgent) {
	t.Helper()
	srv := controllertest.NewServer(t, configure)
	agent := srv.ConnectAgent(t, nil)
	return srv, agent
}

func wantCode(t *testing.T, err error, code codes.Code, msgParts ...string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	for _, p := range msgParts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q does not contain %q", st.Message(), p)
		}
	}
	return st
}

func TestApplyFault_RefusalsChangeNothing(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	tests := []struct {
		name      string
		req       *turbulencev1.ApplyFaultRequest
		code      codes.Code
		msg       string
		wantField string // a BadRequest field violation expected
	}{
		{
			name:      "load_percent 150",
			req:       &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(150, durationpb.New(time.Minute))},
			code:      codes.InvalidArgument,
			msg:       "spec.cpu.load_percent: must be between 1 and 100, got 150",
			wantField: "spec.cpu.load_percent",
		},
		{
			name:      "explicit zero duration",
			req:       &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(50, durationpb.New(0))},
			code:      codes.InvalidArgument,
			msg:       "spec.duration",
			wantField: "spec.duration",
		},
		{
			name:      "no spec",
			req:       &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName},
			code:      codes.InvalidArgument,
			msg:       "spec: is required",
			wantField: "spec",
		},
		{
			name: "unknown agent",
			req:  &turbulencev1.ApplyFaultRequest{AgentId: "nope", Spec: cpuSpec(50, durationpb.New(time.Minute))},
			code: codes.NotFound,
			msg:  `agent_id: agent "nope" is not registered`,
		},
		{
			name: "kind the agent does not support",
			req: &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: &turbulencev1.FaultSpec{
				Duration: durationpb.New(time.Minute),
				Kind:     &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{Path: "/var/tmp", Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 1 << 20}}},
			}},
			code: codes.FailedPrecondition,
			msg:  `agent "test-agent" cannot run disk_fill faults: it supports cpu`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Controller.LastRaftIndex()
			_, err := admin.ApplyFault(ctx, tt.req)
			st := wantCode(t, err, tt.code, tt.msg)
			if tt.wantField != "" {
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							fields = append(fields, v.GetField())
						}
					}
				}
				if len(fields) == 0 || fields[0] != tt.wantField {
					t.Errorf("BadRequest fields = %v, want %q first", fields, tt.wantField)
				}
			}
			// Invariant 6: nothing was recorded.
			if after := srv.Controller.LastRaftIndex(); after != before {
				t.Errorf("raft last index moved from %d to %d", before, after)
			}
			list, err := admin.ListFaults(ctx, &turbulencev1.ListFaultsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.GetFaults()) != 0 {
				t.Errorf("ListFaults = %v, want none", list.GetFaults())
			}
		})
	}
}

func TestApplyFault_FillsDefaultDurationAndDispatches(t *testing.T) {
	srv, agent := newServerWithAgent(t, func(c *controller.Config) { c.DefaultFaultDuration = 42 * time.Second })
	f, err := srv.AdminClient(t).ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(30, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.GetSpec().GetDuration().AsDuration(); got != 42*time.Second {
		t.Errorf("duration = %s, want the configured default 42s", got)
	}
	if got := f.GetDeadline().AsTime().Sub(f.GetCreatedAt().AsTime()); got != 42*time.Second {
		t.Errorf("deadline - created_at = %s, want 42s", got)
	}
	if f.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING || f.GetCreatedBy() != "admin/dev-admin" || !strings.HasPrefix(f.GetId(), "f-") {
		t.Errorf("fault = %v", f)
	}
	if got := agent.Next(t, 10*time.Second).GetApply().GetFault().GetId(); got != f.GetId() {
		t.Errorf("agent received apply for %q, want %q", got, f.GetId())
	}
}

func TestApplyFault_RetriedRequestIDReturnsSameFault(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	req := &turbulencev1.ApplyFaultRequest{RequestId: "retry-me", AgentId: controllertest.AgentName, Spec: cpuSpec(10, durationpb.New(time.Minute))}
	first, err := admin.ApplyFault(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := admin.ApplyFault(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetId() != second.GetId() {
		t.Errorf("retry returned fault %q, want the first one %q", second.GetId(), first.GetId())
	}
	list, err := admin.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetFaults()); n != 1 {
		t.Errorf("%d faults recorded, want 1", n)
	}
}

func TestAuthz_Roles(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	ctx := t.Context()
	viewer := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "vera"}))
	operator := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "otto"}))
	asAgent := srv.ControlClient(t, srv.PKI.Agent)
	asController := srv.ControlClient(t, srv.PKI.Controller)
	req := &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(10, durationpb.New(time.Minute))}

	t.Run("viewer cannot apply", func(t *testing.T) {
		_, err := viewer.ApplyFault(ctx, req)
		wantCode(t, err, codes.PermissionDenied, "viewer/vera")
	})
	t.Run("viewer can read", func(t *testing.T) {
		if _, err := viewer.ListAgents(ctx, &turbulencev1.ListAgentsRequest{}); err != nil {
			t.Error(err)
		}
		if _, err := viewer.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName}); err != nil {
			t.Error(err)
		}
	})
	t.Run("agent and controller certificates are refused", func(t *testing.T) {
		for _, c := range []turbulencev1.ControlServiceClient{asAgent, asController} {
			_, err := c.ListAgents(ctx, &turbulencev1.ListAgentsRequest{})
			wantCode(t, err, codes.PermissionDenied)
			_, err = c.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName})
			wantCode(t, err, codes.PermissionDenied)
			_, err = c.Halt(ctx, &turbulencev1.HaltRequest{})
			wantCode(t, err, codes.PermissionDenied)
		}
	})
	t.Run("operator can apply", func(t *testing.T) {
		if _, err := operator.ApplyFault(ctx, req); err != nil {
			t.Error(err)
		}
	})
	t.Run("viewer reads experiments but cannot start or abort one", func(t *testing.T) {
		if _, err := viewer.ListExperiments(ctx, &turbulencev1.ListExperimentsRequest{}); err != nil {
			t.Error(err)
		}
		_, err := viewer.GetExperiment(ctx, &turbulencev1.GetExperimentRequest{Id: "x-none"})
		wantCode(t, err, codes.NotFound)
		_, err = viewer.StartExperiment(ctx, &turbulencev1.StartExperimentRequest{Spec: []byte("name: x"), DryRun: true})
		wantCode(t, err, codes.PermissionDenied, "viewer/vera")
		_, err = viewer.AbortExperiment(ctx, &turbulencev1.AbortExperimentRequest{Id: "x-none"})
		wantCode(t, err, codes.PermissionDenied, "viewer/vera")
	})
	t.Run("operator may start an experiment", func(t *testing.T) {
		// Past the role check, the file itself is refused, by field.
		_, err := operator.StartExperiment(ctx, &turbulencev1.StartExperimentRequest{Spec: []byte("name: x\nsteps: 3\n"), DryRun: true})
		wantCode(t, err, codes.InvalidArgument, "steps")
		_, err = operator.AbortExperiment(ctx, &turbulencev1.AbortExperimentRequest{Id: "x-none"})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("viewer can halt but not resume", func(t *testing.T) {
		h, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{Reason: "error budget burning"})
		if err != nil {
			t.Fatal(err)
		}
		if !h.GetHalted() || h.GetBy() != "viewer/vera" {
			t.Errorf("halt status = %v", h)
		}
		_, err = viewer.Resume(ctx, &turbulencev1.ResumeRequest{})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("halted fleet refuses new faults", func(t *testing.T) {
		_, err := operator.ApplyFault(ctx, req)
		wantCode(t, err, codes.FailedPrecondition, "halted by viewer/vera", "turbctl resume")
		list, err := operator.ListFaults(ctx, &turbulencev1.ListFaultsRequest{ActiveOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range list.GetFaults() {
			if f.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING {
				t.Errorf("fault %s is %s after halt, want REVERTING", f.GetId(), f.GetState())
			}
		}
	})
	t.Run("operator resumes", func(t *testing.T) {
		h, err := operator.Resume(ctx, &turbulencev1.ResumeRequest{})
		if err != nil || h.GetHalted() {
			t.Fatalf("Resume = %v, %v", h, err)
		}
		if _, err := operator.ApplyFault(ctx, req); err != nil {
			t.Errorf("ApplyFault after resume: %v", err)
		}
	})
}

func TestRevertFault(t *testing.T) {
	srv, agent := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	f, err := admin.ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(10, durationpb.New(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	agent.Next(t, 10*time.Second) // the apply
	got, err := admin.RevertFault(ctx, &turbulencev1.RevertFaultRequest{Id: f.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || got.GetReason() != "revert requested by admin/dev-admin" {
		t.Errorf("after revert: %v", got)
	}
	if rv := agent.Next(t, 10*time.Second).GetRevert(); rv.GetFaultId() != f.GetId() {
		t.Errorf("agent got %v, want a revert of %s", rv, f.GetId())
	}
	_, err = admin.RevertFault(ctx, &turbulencev1.RevertFaultRequest{Id: "f-nope"})
	wantCode(t, err, codes.NotFound, `fault "f-nope" not found`)
}

func TestWatchEvents_ReplaysThenFollows(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := admin.WatchEvents(ctx, &turbulencev1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetType() != "agent.registered" || first.GetSequence() != 1 {
		t.Errorf("first event = %v, want agent.registered #1", first)
	}
	if _, err := admin.Halt(ctx, &turbulencev1.HaltRequest{Reason: "watch"}); err != nil {
		t.Fatal(err)
	}
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if next.GetType() != "fleet.halted" || next.GetSequence() != 2 {
		t.Errorf("followed event = %v, want fleet.halted #2", next)
	}
}
