package e2e

import (
	"context"
	"strconv"
	"testing"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/metrics"
)

// metricsFleet is a fleet whose agent and controller both serve their
// metrics over HTTP, as the daemons do with --metrics-addr.
type metricsFleet struct {
	*fleet
	agentAddr, controllerAddr string
}

func startMetricsFleet(t *testing.T) *metricsFleet {
	t.Helper()
	f := startFleet(t, func(c *agent.Config) { c.MetricsAddr = "127.0.0.1:0" })
	reg := metrics.NewRegistry()
	metrics.RegisterCertExpiry(reg)
	f.srv.Controller.RegisterMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := metrics.Serve(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("controller metrics server: %v", err)
		}
	})
	return &metricsFleet{fleet: f, agentAddr: f.agent.MetricsAddr(), controllerAddr: s.Addr()}
}

// num scrapes addr and returns the value of series ("name{labels}", with
// the labels sorted by name as the exposition writes them), or -1 when
// the series is absent.
func num(t *testing.T, addr, series string) float64 {
	t.Helper()
	v, ok := scrapeMetrics(t, addr)[series]
	if !ok {
		return -1
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", series, v, err)
	}
	return n
}

// TestMetrics_SeriesMoveWithEvents drives a real controller and agent
// through an apply, an end at the deadline and a lost session, and
// checks that each moves its series by exactly one on the daemon that
// saw it.
func TestMetrics_SeriesMoveWithEvents(t *testing.T) {
	f := startMetricsFleet(t)
	const (
		applyCount   = `turbulence_controller_fault_apply_duration_seconds_count{result="applied"}`
		ctlDeadline  = `turbulence_controller_faults_ended_total{reason="deadline"}`
		agentApplied = `turbulence_agent_faults_applied_total{kind="cpu"}`
		agentEnded   = `turbulence_agent_faults_ended_total{kind="cpu",reason="deadline"}`
		lateCount    = `turbulence_agent_revert_lateness_seconds_count{kind="cpu"}`
		superseded   = `turbulence_controller_agent_sessions_ended_total{cause="superseded"}`
		reconnects   = `turbulence_agent_session_reconnects_total`
		connected    = `turbulence_agent_controller_connected`
	)
	for _, c := range []struct{ addr, series string }{
		{f.controllerAddr, applyCount}, {f.controllerAddr, ctlDeadline}, {f.controllerAddr, superseded},
		{f.agentAddr, agentApplied}, {f.agentAddr, agentEnded}, {f.agentAddr, lateCount}, {f.agentAddr, reconnects},
	} {
		if v := num(t, c.addr, c.series); v != 0 {
			t.Errorf("before any event: %s = %v, want 0 (exported from the start)", c.series, v)
		}
	}
	if v := num(t, f.agentAddr, connected); v != 1 {
		t.Errorf("%s = %v with the session open, want 1", connected, v)
	}

	// Apply: the verdict reached the controller before turbctl returned.
	id, _ := f.applyCPU(t, "20", "1s")
	if v := num(t, f.controllerAddr, applyCount); v != 1 {
		t.Errorf("after one apply: %s = %v, want 1", applyCount, v)
	}
	if v := num(t, f.agentAddr, agentApplied); v != 1 {
		t.Errorf("after one apply: %s = %v, want 1", agentApplied, v)
	}

	// Its deadline ends it, on the agent and then on the controller.
	f.waitReverted(t, id)
	for _, c := range []struct{ addr, series string }{
		{f.controllerAddr, ctlDeadline}, {f.agentAddr, agentEnded}, {f.agentAddr, lateCount},
	} {
		if v := num(t, c.addr, c.series); v != 1 {
			t.Errorf("after one fault ended at its deadline: %s = %v, want 1", c.series, v)
		}
	}

	// Figures for the report, not asserts: one apply and one revert on
	// whatever load the machine has.
	got := scrapeMetrics(t, f.controllerAddr)
	t.Logf("apply latency (ApplyFault call to verdict): %s s", got[`turbulence_controller_fault_apply_duration_seconds_sum{result="applied"}`])
	t.Logf("revert lateness after the deadline: %s s", scrapeMetrics(t, f.agentAddr)[`turbulence_agent_revert_lateness_seconds_sum{kind="cpu"}`])

	// Another session under the agent's name supersedes the real one's;
	// the real agent reconnects (and supersedes it in turn).
	f.srv.ConnectAgent(t, nil)
	controllertest.WaitFor(t, waitLong, "the agent to reconnect after its session was superseded", func() bool {
		return num(t, f.agentAddr, reconnects) >= 1 && num(t, f.controllerAddr, superseded) >= 1
	})
}
