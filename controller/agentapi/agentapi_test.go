package agentapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

func applyCPU(t *testing.T, admin turbulencev1.ControlServiceClient) *turbulencev1.Fault {
	t.Helper()
	f, err := admin.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{
		AgentId: controllertest.AgentName,
		Spec:    &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 50}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitFault polls GetFault until cond holds and returns the fault.
func waitFault(t *testing.T, admin turbulencev1.ControlServiceClient, id string, what string, cond func(*turbulencev1.Fault) bool) *turbulencev1.Fault {
	t.Helper()
	var f *turbulencev1.Fault
	controllertest.WaitFor(t, wait, what, func() bool {
		var err error
		f, err = admin.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		return cond(f)
	})
	return f
}

func inState(st turbulencev1.FaultState) func(*turbulencev1.Fault) bool {
	return func(f *turbulencev1.Fault) bool { return f.GetState() == st }
}

func TestConnect_RefusesWrongIdentity(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	t.Run("hello names another agent", func(t *testing.T) {
		a := srv.OpenAgentStream(t)
		a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: "someone-else"}}})
		_, err := a.Recv(wait)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("err = %v, want PermissionDenied", err)
		}
	})
	t.Run("first message is not a hello", func(t *testing.T) {
		a := srv.OpenAgentStream(t)
		a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{}}})
		_, err := a.Recv(wait)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
	t.Run("admin certificate", func(t *testing.T) {
		stream, err := turbulencev1.NewAgentServiceClient(srv.Dial(t, srv.PKI.Admin)).Connect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: "dev-admin"}}})
		_, err = stream.Recv()
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("err = %v, want PermissionDenied", err)
		}
	})
	list, err := srv.AdminClient(t).ListAgents(t.Context(), &turbulencev1.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetAgents()) != 0 {
		t.Errorf("refused sessions registered agents: %v", list.GetAgents())
	}
}

func TestSession_FaultLifecycle(t *testing.T) {
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.LeaseTTL = 9 * time.Second; c.HeartbeatInterval = 500 * time.Millisecond })
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, &turbulencev1.Hello{Labels: map[string]string{"zone": "a"}})
	if got := agent.Welcome.GetLeaseTtl().AsDuration(); got != 9*time.Second {
		t.Errorf("Welcome lease_ttl = %s, want 9s", got)
	}
	if got := agent.Welcome.GetHeartbeatInterval().AsDuration(); got != 500*time.Millisecond {
		t.Errorf("Welcome heartbeat_interval = %s, want 500ms", got)
	}
	a, err := admin.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
	if err != nil {
		t.Fatal(err)
	}
	if !a.GetConnected() || a.GetLabels()["zone"] != "a" || a.GetRegisteredAt() == nil {
		t.Errorf("agent = %v, want connected with labels", a)
	}

	f := applyCPU(t, admin)
	apply := agent.Next(t, wait).GetApply()
	if apply.GetFault().GetId() != f.GetId() || apply.GetCommandId() == "" {
		t.Fatalf("agent got %v, want ApplyFault for %s", apply, f.GetId())
	}

	// A successful CommandResult moves the fault to ACTIVE.
	agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: &turbulencev1.CommandResult{
		CommandId: apply.GetCommandId(), FaultId: f.GetId(), Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, WorkerPid: 4242},
	}}})
	active := waitFault(t, admin, f.GetId(), "fault ACTIVE", inState(turbulencev1.FaultState_FAULT_STATE_ACTIVE))
	if active.GetStatus().GetWorkerPid() != 4242 {
		t.Errorf("status = %v, want worker_pid 4242", active.GetStatus())
	}

	// A heartbeat is answered with a lease renewal, and the held status
	// is overlaid on reads.
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, MeasuredCpuPercent: 49.5, WorkerPid: 4242}))
	m, err := agent.Recv(wait)
	if err != nil || m.GetLease().GetLeaseTtl().AsDuration() != 9*time.Second {
		t.Fatalf("answer to heartbeat = %v, %v; want LeaseRenewal 9s", m, err)
	}
	waitFault(t, admin, f.GetId(), "measured cpu overlaid", func(f *turbulencev1.Fault) bool { return f.GetStatus().GetMeasuredCpuPercent() == 49.5 })

	// A heartbeat reporting the fault ended records it as REVERTED.
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "deadline"}))
	done := waitFault(t, admin, f.GetId(), "fault REVERTED", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if done.GetReason() != "deadline" || done.GetEndedAt() == nil {
		t.Errorf("ended fault = %v, want reason deadline and ended_at", done)
	}
}

// TestSession_AgentRevertFailureIsRecorded: an agent whose own revert
// failed reports the fault held and REVERTING while it retries; the
// controller records that in raft (a read must not show a fault on the
// host as ACTIVE and clean), and the agent's later REVERTED ends it.
func TestSession_AgentRevertFailureIsRecorded(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	f := applyCPU(t, admin)
	answerApply(t, agent, f.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE}})
	waitFault(t, admin, f.GetId(), "fault ACTIVE", inState(turbulencev1.FaultState_FAULT_STATE_ACTIVE))

	const stuck = "deadline; revert failed 1 time(s), retrying: delete qdisc: device or resource busy"
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTING, Reason: stuck}))
	got := waitFault(t, admin, f.GetId(), "fault REVERTING", inState(turbulencev1.FaultState_FAULT_STATE_REVERTING))
	if got.GetReason() != stuck {
		t.Errorf("reason = %q, want the agent's %q", got.GetReason(), stuck)
	}

	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "deadline (reverted at attempt 2)"}))
	done := waitFault(t, admin, f.GetId(), "fault REVERTED", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if done.GetReason() != "deadline (reverted at attempt 2)" {
		t.Errorf("ended reason = %q, want the agent's", done.GetReason())
	}
}

// TestSession_ApplyAnsweredWithAnEndRecordsIt: an apply the agent answers
// ok with a status that already says REVERTING (its take-back failed and
// is retried) or REVERTED (a deadline during the apply) is recorded as
// that, never as ACTIVE.
func TestSession_ApplyAnsweredWithAnEndRecordsIt(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	for _, want := range []turbulencev1.FaultState{turbulencev1.FaultState_FAULT_STATE_REVERTING, turbulencev1.FaultState_FAULT_STATE_REVERTED} {
		f := applyCPU(t, admin)
		reason := "not applied: record how to revert it in the journal: disk full"
		answerApply(t, agent, f.GetId(), &turbulencev1.CommandResult{Ok: true,
			Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: want, Reason: reason}})
		got := waitFault(t, admin, f.GetId(), "fault "+want.String(), inState(want))
		if got.GetReason() != reason {
			t.Errorf("%s: reason = %q, want the agent's %q", want, got.GetReason(), reason)
		}
	}
}

// answerApply waits for the ApplyFault of faultID and answers it with res.
func answerApply(t *testing.T, agent *controllertest.FakeAgent, faultID string, res *turbulencev1.CommandResult) {
	t.Helper()
	apply := agent.Next(t, wait).GetApply()
	if apply.GetFault().GetId() != faultID {
		t.Fatalf("agent got %v, want ApplyFault for %s", apply, faultID)
	}
	res.CommandId, res.FaultId = apply.GetCommandId(), faultID
	agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: res}})
}

func heartbeat(statuses ...*turbulencev1.FaultStatus) *turbulencev1.AgentMessage {
	return &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{Faults: statuses}}}
}

func TestSession_RefusedApplyFails(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	f := applyCPU(t, admin)
	answerApply(t, agent, f.GetId(), &turbulencev1.CommandResult{Ok: false, Error: "policy: cpu load_percent 50 exceeds the host's max_cpu_percent 20"})
	failed := waitFault(t, admin, f.GetId(), "fault FAILED", inState(turbulencev1.FaultState_FAULT_STATE_FAILED))
	if failed.GetReason() != "policy: cpu load_percent 50 exceeds the host's max_cpu_percent 20" {
		t.Errorf("reason = %q", failed.GetReason())
	}
}

func TestSession_HaltReachesAgents(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	f := applyCPU(t, admin)
	agent.Next(t, wait) // the apply

	if _, err := admin.Halt(t.Context(), &turbulencev1.HaltRequest{Reason: "latency SLO breached"}); err != nil {
		t.Fatal(err)
	}
	if h := agent.Next(t, wait).GetHalt(); h.GetReason() != "latency SLO breached" {
		t.Fatalf("agent got %v, want HaltAgent", h)
	}
	if got, _ := admin.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: f.GetId()}); got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING {
		t.Errorf("fault state after halt = %s, want REVERTING", got.GetState())
	}
	// The agent reports what the halt reverted.
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "halt"}))
	waitFault(t, admin, f.GetId(), "fault REVERTED", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))

	// An agent that connects while halted learns it from its Welcome
	// (the new session replaces the old one).
	again := srv.ConnectAgent(t, nil)
	if !again.Welcome.GetHalted() {
		t.Error("Welcome.halted = false while the fleet is halted")
	}
	if _, err := admin.Resume(t.Context(), &turbulencev1.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if again.Next(t, wait).GetResume() == nil {
		t.Error("agent did not get ResumeAgent")
	}
}

func TestSession_HelloReconciles(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	first := srv.ConnectAgent(t, nil)
	pending := applyCPU(t, admin)
	first.Next(t, wait) // apply, never answered
	active := applyCPU(t, admin)
	apply := first.Next(t, wait).GetApply()
	first.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: &turbulencev1.CommandResult{
		CommandId: apply.GetCommandId(), FaultId: active.GetId(), Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: active.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE},
	}}})
	waitFault(t, admin, active.GetId(), "fault ACTIVE", inState(turbulencev1.FaultState_FAULT_STATE_ACTIVE))

	// Reconnect holding only a fault the controller never heard of.
	second := srv.ConnectAgent(t, &turbulencev1.Hello{Faults: []*turbulencev1.FaultStatus{
		{FaultId: "f-stranger", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE},
	}})
	got := map[string]bool{}
	for range 3 {
		m := second.Next(t, wait)
		switch {
		case m.GetApply() != nil:
			got["apply "+m.GetApply().GetFault().GetId()] = true
		case m.GetRevert() != nil:
			got["revert "+m.GetRevert().GetFaultId()] = true
		default:
			t.Errorf("unexpected message %v", m)
		}
	}
	// The active fault it no longer holds is asked about (a RevertFault
	// is a no-op for a fault the agent does not hold).
	for _, want := range []string{"apply " + pending.GetId(), "revert f-stranger", "revert " + active.GetId()} {
		if !got[want] {
			t.Errorf("after Hello the agent got %v, missing %q", got, want)
		}
	}
	// Invariant 8: the Hello lists only held faults; what ended while the
	// agent was away comes in the answer to that question or in its first
	// heartbeat. Until then the unheld fault is UNCONFIRMED, not REVERTED
	// on a guess.
	waiting := waitFault(t, admin, active.GetId(), "unheld fault UNCONFIRMED", inState(turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED))
	if waiting.GetReason() != agentapi.ReasonAwaitingReport {
		t.Errorf("reason = %q, want %q", waiting.GetReason(), agentapi.ReasonAwaitingReport)
	}
	if _, err := first.Recv(wait); status.Code(err) != codes.Aborted {
		t.Errorf("old session ended with %v, want Aborted (replaced)", err)
	}
}

// activeFault applies a CPU fault, has agent answer it ACTIVE and report
// a measured load of cpu, and returns it once recorded ACTIVE.
func activeFault(t *testing.T, admin turbulencev1.ControlServiceClient, agent *controllertest.FakeAgent, cpu float64) *turbulencev1.Fault {
	t.Helper()
	f := applyCPU(t, admin)
	answerApply(t, agent, f.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, WorkerPid: 4242}})
	waitFault(t, admin, f.GetId(), "fault ACTIVE", inState(turbulencev1.FaultState_FAULT_STATE_ACTIVE))
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, MeasuredCpuPercent: cpu, WorkerPid: 4242}))
	waitFault(t, admin, f.GetId(), "measured cpu overlaid", func(f *turbulencev1.Fault) bool { return f.GetStatus().GetMeasuredCpuPercent() == cpu })
	return f
}

// TestLeaderLoop_SilentAgentIsUnconfirmed: an agent that goes silent past
// its lease leaves its faults UNCONFIRMED since the moment the lease ran
// out, never REVERTED (invariant 8), with the last measured effect kept.
func TestLeaderLoop_SilentAgentIsUnconfirmed(t *testing.T) {
	const ttl = time.Second
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.LeaseTTL = ttl; c.HeartbeatInterval = 200 * time.Millisecond })
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	f := activeFault(t, admin, agent, 48.5)
	lastHeard := time.Now() // the heartbeat above was answered before this
	agent.Vanish()          // the agent vanishes without a word
	gone := time.Now()

	// Lease TTL 1s + 2s grace, checked every second.
	got := waitFault(t, admin, f.GetId(), "fault UNCONFIRMED after the lease ran out",
		func(f *turbulencev1.Fault) bool { return f.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE })
	if got.GetState() != turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED {
		t.Fatalf("state = %s (%q), want UNCONFIRMED", got.GetState(), got.GetReason())
	}
	if got.GetReason() != agentapi.ReasonLeaseExpired {
		t.Errorf("reason = %q, want %q", got.GetReason(), agentapi.ReasonLeaseExpired)
	}
	if got.GetEndedAt() != nil {
		t.Errorf("ended_at = %s on a fault nobody saw end", got.GetEndedAt().AsTime())
	}
	since := got.GetUnconfirmedSince().AsTime()
	if earliest, latest := lastHeard.Add(-wait).Add(ttl), gone.Add(ttl); got.GetUnconfirmedSince() == nil || since.Before(earliest) || since.After(latest) {
		t.Errorf("unconfirmed_since = %v, want the lease's end, between %s and %s", got.GetUnconfirmedSince(), earliest, latest)
	}
	if got.GetStatus().GetMeasuredCpuPercent() != 48.5 {
		t.Errorf("status = %v, want the last measured cpu 48.5 kept", got.GetStatus())
	}
}

// TestReconnect_EndedWhileAwayIsRecordedAsReported: an agent that comes
// back reports how and when the faults it no longer holds ended — in its
// first heartbeat, or in its answer to the RevertFault that asks about
// each — and the controller records exactly its reason and ended_at,
// whether the lease had run out on the controller (UNCONFIRMED) or not
// (ACTIVE), never first "agent no longer holds it" at the reconnect time.
func TestReconnect_EndedWhileAwayIsRecordedAsReported(t *testing.T) {
	const reason = "agent restarted: reverted at start-up"
	for _, tc := range []struct {
		name  string
		ttl   time.Duration
		state turbulencev1.FaultState // before the reconnect
		// answer: the record comes in the answer to the question, not in
		// a heartbeat.
		answer bool
	}{
		{"lease ran out, heartbeat", time.Second, turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED, false},
		{"within the lease, heartbeat", time.Minute, turbulencev1.FaultState_FAULT_STATE_ACTIVE, false},
		{"lease ran out, answer", time.Second, turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED, true},
		{"within the lease, answer", time.Minute, turbulencev1.FaultState_FAULT_STATE_ACTIVE, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := controllertest.NewServer(t, func(c *controller.Config) { c.LeaseTTL = tc.ttl; c.HeartbeatInterval = 200 * time.Millisecond })
			admin := srv.AdminClient(t)
			first := srv.ConnectAgent(t, nil)
			f := activeFault(t, admin, first, 61)
			first.Vanish()
			waitFault(t, admin, f.GetId(), "fault "+tc.state.String(), inState(tc.state))

			endedAt := time.Now().Add(-time.Minute).Truncate(time.Microsecond) // long before the reconnect
			record := &turbulencev1.FaultStatus{
				FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED,
				Reason: reason, EndedAt: timestamppb.New(endedAt),
			}
			again := srv.ConnectAgent(t, nil) // holds nothing
			query := again.Next(t, wait).GetRevert()
			if query.GetFaultId() != f.GetId() {
				t.Fatalf("after the Hello the agent got %v, want a RevertFault asking about %s", query, f.GetId())
			}
			if tc.answer {
				again.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: &turbulencev1.CommandResult{
					CommandId: query.GetCommandId(), FaultId: f.GetId(), Ok: true, Status: record}}})
			} else {
				again.Send(t, heartbeat(record))
			}
			got := waitFault(t, admin, f.GetId(), "fault ended", func(f *turbulencev1.Fault) bool { return state.Ended(f.GetState()) })
			if got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED || got.GetReason() != reason {
				t.Errorf("fault = %s %q, want REVERTED %q", got.GetState(), got.GetReason(), reason)
			}
			if !got.GetEndedAt().AsTime().Equal(endedAt) {
				t.Errorf("ended_at = %s, want the agent's %s", got.GetEndedAt().AsTime(), endedAt)
			}
			if got.GetStatus().GetMeasuredCpuPercent() != 61 {
				t.Errorf("status = %v, want the last measured cpu 61 kept", got.GetStatus())
			}
		})
	}
}

// TestReconnect_NoRecordStaysUnconfirmed: an agent that comes back with
// neither the fault nor a record of its end (its answer to the question
// is a bare "not held", without ended_at) leaves it UNCONFIRMED, with a
// reason that says the agent has no record of it — never REVERTED.
func TestReconnect_NoRecordStaysUnconfirmed(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	first := srv.ConnectAgent(t, nil)
	f := activeFault(t, admin, first, 30)
	first.Vanish()

	again := srv.ConnectAgent(t, nil)
	again.Send(t, heartbeat()) // nothing ended, as far as it knows
	answerRevert(t, again, f.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "not held by this agent"}})
	got := waitFault(t, admin, f.GetId(), "reason says no record",
		func(f *turbulencev1.Fault) bool {
			return f.GetReason() == agentapi.ReasonNoRecord || state.Ended(f.GetState())
		})
	if got.GetState() != turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED || got.GetReason() != agentapi.ReasonNoRecord {
		t.Errorf("fault = %s %q, want UNCONFIRMED %q", got.GetState(), got.GetReason(), agentapi.ReasonNoRecord)
	}
	if got.GetUnconfirmedSince() == nil {
		t.Error("unconfirmed_since not set")
	}

	// The operator, having checked the host, closes it with a revert,
	// which the connected agent confirms by holding nothing. The reason
	// says who closed it, and that the revert is not what ended it.
	if _, err := admin.RevertFault(t.Context(), &turbulencev1.RevertFaultRequest{Id: f.GetId()}); err != nil {
		t.Fatal(err)
	}
	answerRevert(t, again, f.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "not held by this agent"}})
	closed := waitFault(t, admin, f.GetId(), "fault closed by the operator", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if !strings.HasPrefix(closed.GetReason(), "revert requested by ") || !strings.HasSuffix(closed.GetReason(), "; "+agentapi.ReasonGoneWithoutRecord) {
		t.Errorf("reason = %q, want the operator's revert, then %q", closed.GetReason(), agentapi.ReasonGoneWithoutRecord)
	}
}

// A fault whose agent's lease ended it, and whose agent then lost the
// record (killed before it reported), is asked to be reverted while
// the agent is connected: the agent holds nothing and knows nothing, and
// the controller must not record that the revert ended it. A fault the
// agent does end on the revert keeps the revert's reason.
func TestSession_RevertOfAFaultTheAgentLostIsNotClaimed(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	agent := srv.ConnectAgent(t, nil)
	lost := activeFault(t, admin, agent, 30)
	kept := activeFault(t, admin, agent, 30)

	if _, err := admin.RevertFault(t.Context(), &turbulencev1.RevertFaultRequest{Id: lost.GetId()}); err != nil {
		t.Fatal(err)
	}
	answerRevert(t, agent, lost.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: lost.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "not held by this agent"}})
	got := waitFault(t, admin, lost.GetId(), "fault closed", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if !strings.HasSuffix(got.GetReason(), agentapi.ReasonGoneWithoutRecord) {
		t.Errorf("reason = %q, want it to end with %q", got.GetReason(), agentapi.ReasonGoneWithoutRecord)
	}

	if _, err := admin.RevertFault(t.Context(), &turbulencev1.RevertFaultRequest{Id: kept.GetId()}); err != nil {
		t.Fatal(err)
	}
	answerRevert(t, agent, kept.GetId(), &turbulencev1.CommandResult{Ok: true,
		Status: &turbulencev1.FaultStatus{FaultId: kept.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "revert requested", EndedAt: timestamppb.Now()}})
	got = waitFault(t, admin, kept.GetId(), "fault reverted", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if !strings.HasPrefix(got.GetReason(), "revert requested by ") || strings.Contains(got.GetReason(), agentapi.ReasonGoneWithoutRecord) {
		t.Errorf("reason = %q, want the revert's own", got.GetReason())
	}
}

// answerRevert waits for the RevertFault of faultID and answers it with res.
func answerRevert(t *testing.T, agent *controllertest.FakeAgent, faultID string, res *turbulencev1.CommandResult) {
	t.Helper()
	rev := agent.Next(t, wait).GetRevert()
	if rev.GetFaultId() != faultID {
		t.Fatalf("agent got %v, want RevertFault for %s", rev, faultID)
	}
	res.CommandId, res.FaultId = rev.GetCommandId(), faultID
	agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: res}})
}

func TestSession_DisconnectShowsInLiveness(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := srv.AgentClient(t).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("Recv = %v, %v; want Welcome", m, err)
	}
	connected := func() bool {
		a, err := admin.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
		if err != nil {
			t.Fatal(err)
		}
		return a.GetConnected()
	}
	if !connected() {
		t.Fatal("agent not shown connected")
	}
	cancel()
	controllertest.WaitFor(t, wait, "agent shown disconnected", func() bool { return !connected() })
}
