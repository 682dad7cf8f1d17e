package agentapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// counter reads one series of a hub metric from reg (0 when absent).
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := testutil.MetricValue(t, reg, name, labels)
	return v
}

// handled returns once the controller has handled every message the
// agent sent before: it sends a heartbeat holding a fault the
// controller never made and waits for the RevertFault that answers it
// (the session handles messages in order). Lease renewals cannot tell:
// requests made while one is pending go out as one.
func handled(t *testing.T, agent *controllertest.FakeAgent) {
	t.Helper()
	probe := fmt.Sprintf("f-probe-%d", time.Now().UnixNano())
	agent.Send(t, heartbeat(&turbulencev1.FaultStatus{FaultId: probe, State: turbulencev1.FaultState_FAULT_STATE_ACTIVE}))
	for {
		m, err := agent.Recv(wait)
		if err != nil {
			t.Fatalf("waiting for the revert of %s: %v", probe, err)
		}
		if m.GetRevert().GetFaultId() == probe {
			return
		}
	}
}

// TestMetrics_SilentAgentLifecycle follows one fault through the hub's
// metrics: its apply is timed, the session lost when the agent vanishes
// is counted, its lease running out counts one expiry and one
// UNCONFIRMED fault, and the agent's later report of the end counts one
// ended fault under the report's reason.
func TestMetrics_SilentAgentLifecycle(t *testing.T) {
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.LeaseTTL = time.Second; c.HeartbeatInterval = 200 * time.Millisecond })
	reg := metrics.NewRegistry()
	srv.Controller.RegisterMetrics(reg)
	for _, name := range []string{agentapi.MetricFaultsEnded, agentapi.MetricFaultsUnconfirmed, agentapi.MetricLeaseExpiries, agentapi.MetricSessionsEnded} {
		if _, ok := testutil.MetricValue(t, reg, name, nil); !ok {
			t.Errorf("%s not exported before its first event", name)
		}
	}
	admin := srv.AdminClient(t)
	first := srv.ConnectAgent(t, nil)
	f := activeFault(t, admin, first, 40)
	if n := counter(t, reg, agentapi.MetricApplyDuration, map[string]string{"result": agentapi.ResultApplied}); n != 1 {
		t.Errorf("apply duration count{applied} = %v after one applied fault, want 1", n)
	}

	first.Vanish()
	waitFault(t, admin, f.GetId(), "fault UNCONFIRMED", inState(turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{agentapi.MetricSessionsEnded, map[string]string{"cause": agentapi.CauseConnectionLost}, 1},
		{agentapi.MetricLeaseExpiries, nil, 1},
		{agentapi.MetricFaultsUnconfirmed, map[string]string{"reason": metrics.EndLeaseExpired}, 1},
		{agentapi.MetricFaultsEnded, nil, 0},
	} {
		if got := counter(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	again := srv.ConnectAgent(t, nil)
	again.Next(t, wait) // the question about the fault it no longer holds
	again.Send(t, heartbeat(&turbulencev1.FaultStatus{
		FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED,
		Reason: "lease expired", EndedAt: timestamppb.Now(),
	}))
	waitFault(t, admin, f.GetId(), "fault REVERTED", inState(turbulencev1.FaultState_FAULT_STATE_REVERTED))
	if got := counter(t, reg, agentapi.MetricFaultsEnded, map[string]string{"reason": metrics.EndLeaseExpired}); got != 1 {
		t.Errorf("faults ended{lease_expired} = %v, want 1", got)
	}
	// The end repeated in the next heartbeat is not counted again.
	again.Send(t, heartbeat(&turbulencev1.FaultStatus{
		FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "lease expired", EndedAt: timestamppb.Now(),
	}))
	again.Send(t, heartbeat())
	handled(t, again)
	if got := counter(t, reg, agentapi.MetricFaultsEnded, nil); got != 1 {
		t.Errorf("faults ended (all reasons) = %v after one end reported twice, want 1", got)
	}
}

// TestMetrics_SupersededSession: a second session of the same agent
// ends the first, counted as superseded.
func TestMetrics_SupersededSession(t *testing.T) {
	t.Parallel()
	srv := controllertest.NewServer(t, nil)
	reg := metrics.NewRegistry()
	srv.Controller.RegisterMetrics(reg)
	first := srv.ConnectAgent(t, nil)
	srv.ConnectAgent(t, nil)
	for {
		if _, err := first.Recv(wait); err != nil {
			break // ended (a timeout fails below)
		}
	}
	controllertest.WaitFor(t, wait, "sessions ended{superseded} to reach 1", func() bool {
		return counter(t, reg, agentapi.MetricSessionsEnded, map[string]string{"cause": agentapi.CauseSuperseded}) == 1
	})
}
