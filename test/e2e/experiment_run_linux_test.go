package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// healthService is a real HTTP service on loopback whose health the
// test flips.
func healthService(t *testing.T) (url string, failing *atomic.Bool) {
	t.Helper()
	failing = new(atomic.Bool)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s.URL + "/healthz", failing
}

// runText is an experiment burning a little CPU on one web agent of
// experimentFleet for duration, with an HTTP steady state and abort
// condition on url; budget, when not empty, is an error_budget block.
func runText(url, duration, budget string) string {
	return fmt.Sprintf(`
name: e2e-run
hypothesis: the service answers while one web agent burns a little CPU
owner: sre
seed: 11
targets:
  web: {selector: role=web, count: 1}
steps:
  - {name: burn, target: web, duration: %s, fault: {cpu: {cores: 1, load_percent: 5}}}
probes:
  - name: home
    interval: 200ms
    http: {url: %q, timeout: 1s, max_latency: 500ms}
  - name: web-cpu
    interval: 1s
    host: {target: web, metric: cpu_percent, max: 100}
steady_state: [home, web-cpu]
abort_when: [home]
recovery: 10s
%s`, duration, url, budget)
}

// waitCPUReports waits until both web agents have reported a CPU share,
// which takes two readings (their second heartbeat): the web-cpu probe of
// the steady state would fail before.
func waitCPUReports(t *testing.T, f *fleet) {
	t.Helper()
	controllertest.WaitFor(t, waitLong, "the web agents to report cpu_percent", func() bool {
		for _, id := range []string{"web-1", "web-2"} {
			m, err := f.api.GetAgentMetrics(t.Context(), &turbulencev1.GetAgentMetricsRequest{AgentId: id, LatestOnly: true})
			if err != nil || len(m.GetSamples()) == 0 || m.GetSamples()[0].CpuPercent == nil {
				return false
			}
		}
		return true
	})
}

// TestExperimentRun_FollowCompletesAndReports runs an experiment with
// turbctl against a real controller and real agents, follows it to its
// end, and reads it back with ls, show and report in every format.
func TestExperimentRun_FollowCompletesAndReports(t *testing.T) {
	f := experimentFleet(t)
	url, _ := healthService(t)
	path := writeExperiment(t, runText(url, "2s", ""))
	waitCPUReports(t, f)
	code, out, stderr := f.turbctl(t, "experiment", "run", "--follow", path)
	if code != cli.ExitOK {
		t.Fatalf("experiment run --follow: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("experiment run --follow:\n%s", out)
	for _, want := range []string{"step.started", "step.ended", "completed", "home="} {
		if !strings.Contains(out, want) {
			t.Errorf("run --follow output lacks %q:\n%s", want, out)
		}
	}
	list, err := f.api.ListExperiments(t.Context(), &turbulencev1.ListExperimentsRequest{})
	if err != nil || len(list.GetExperiments()) != 1 {
		t.Fatalf("experiments = %v, %v", list, err)
	}
	id := list.GetExperiments()[0].GetId()
	if code, out, _ := f.turbctl(t, "experiment", "ls"); code != cli.ExitOK || !strings.Contains(out, id) || !strings.Contains(out, "COMPLETED") {
		t.Errorf("experiment ls: exit %d\n%s", code, out)
	}
	if code, out, _ := f.turbctl(t, "experiment", "show", id); code != cli.ExitOK || !strings.Contains(out, "PASSED") || !strings.Contains(out, "burn") {
		t.Errorf("experiment show: exit %d\n%s", code, out)
	}
	if code, out, _ := f.turbctl(t, "experiment", "report", id); code != cli.ExitOK || !strings.Contains(out, "e2e-run") {
		t.Errorf("experiment report: exit %d\n%s", code, out)
	} else {
		t.Logf("experiment report:\n%s", out)
	}
	code, out, _ = f.turbctl(t, "experiment", "report", id, "-o", "json")
	var rep struct {
		State string `json:"state"`
		Hosts []struct {
			Agent   string         `json:"agent"`
			Metrics map[string]any `json:"metrics"`
		} `json:"hosts"`
		Probes []struct {
			Name    string `json:"name"`
			Samples []any  `json:"samples"`
		} `json:"probes"`
		Steps []struct {
			Agents []struct {
				State string `json:"state"`
			} `json:"agents"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != cli.ExitOK || err != nil {
		t.Fatalf("experiment report -o json: exit %d, %v\n%s", code, err, out)
	}
	if rep.State != "COMPLETED" || len(rep.Probes) != 2 || len(rep.Probes[0].Samples) < 5 || len(rep.Steps) != 1 || len(rep.Steps[0].Agents) != 1 ||
		len(rep.Hosts) != 1 || rep.Hosts[0].Metrics["cpu_percent"] == nil {
		t.Errorf("report = %+v", rep)
	}
	if code, out, _ := f.turbctl(t, "experiment", "report", id, "-o", "html"); code != cli.ExitOK || !strings.Contains(out, "<svg") {
		t.Errorf("experiment report -o html: exit %d, %d bytes", code, len(out))
	}
	if code, _, stderr := f.turbctl(t, "experiment", "ls", "-o", "html"); code != cli.ExitInvalid {
		t.Errorf("experiment ls -o html: exit %d (%s), want %d: only report renders html", code, stderr, cli.ExitInvalid)
	}
}

// TestExperimentRun_AbortByHandRevertsTheFault aborts a running
// experiment with turbctl: its fault on the real agent ends REVERTED.
func TestExperimentRun_AbortByHandRevertsTheFault(t *testing.T) {
	f := experimentFleet(t)
	url, _ := healthService(t)
	waitCPUReports(t, f)
	code, out, stderr := f.turbctl(t, "experiment", "run", writeExperiment(t, runText(url, "5m", "")), "-o", "json")
	if code != cli.ExitOK {
		t.Fatalf("experiment run: exit %d\n%s\n%s", code, out, stderr)
	}
	var x struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil || x.ID == "" {
		t.Fatalf("run -o json: %v\n%s", err, out)
	}
	var groupID string
	controllertest.WaitFor(t, waitLong, "the step to start", func() bool {
		got, err := f.api.GetExperiment(t.Context(), &turbulencev1.GetExperimentRequest{Id: x.ID})
		if err != nil || len(got.GetSteps()) == 0 {
			return false
		}
		groupID = got.GetSteps()[0].GetGroupId()
		return groupID != ""
	})
	if code, out, stderr := f.turbctl(t, "experiment", "abort", x.ID, "--reason", "enough"); code != cli.ExitOK || !strings.Contains(out, "ABORTED") {
		t.Fatalf("experiment abort: exit %d\n%s\n%s", code, out, stderr)
	}
	controllertest.WaitFor(t, waitLong, "the fault to be REVERTED on the agent", func() bool {
		g, err := f.api.GetFaultGroup(t.Context(), &turbulencev1.GetFaultGroupRequest{Id: groupID})
		return err == nil && len(g.GetMembers()) > 0 && g.GetMembers()[0].GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED
	})
	if code, _, stderr := f.turbctl(t, "experiment", "abort", x.ID); code != cli.ExitRefused {
		t.Errorf("second abort: exit %d (%s), want %d", code, stderr, cli.ExitRefused)
	}
}

// TestExperimentRun_ErrorBudgetRefusesTheStart asks a real Prometheus
// for the remaining error budget (5 %, below the floor of 50 %): the
// experiment is REFUSED, run --follow exits 10, and no group exists.
func TestExperimentRun_ErrorBudgetRefusesTheStart(t *testing.T) {
	f := experimentFleet(t)
	prom := startPrometheus(t)
	url, _ := healthService(t)
	budget := fmt.Sprintf("error_budget: {url: %q, query: \"vector(0.05)\", min_remaining: 0.5}\n", prom)
	code, out, stderr := f.turbctl(t, "experiment", "run", "--follow", writeExperiment(t, runText(url, "1m", budget)))
	if code != cli.ExitExperimentFailed || !strings.Contains(stderr, "REFUSED") || !strings.Contains(stderr, "error budget") {
		t.Fatalf("experiment run --follow: exit %d, want %d\n%s\n%s", code, cli.ExitExperimentFailed, out, stderr)
	}
	groups, err := f.api.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 0 {
		t.Errorf("groups = %v, %v; a refused experiment applies nothing", groups, err)
	}
}

// TestExperimentRun_BurnRateAbortsAndDryRunTouchesNothing: a dry run
// chooses the target and records nothing; the run then aborts on the
// error budget's burn-rate guard, asked of a real Prometheus while the
// fault runs.
func TestExperimentRun_BurnRateAbortsAndDryRunTouchesNothing(t *testing.T) {
	f := experimentFleet(t)
	prom := startPrometheus(t)
	url, _ := healthService(t)
	waitCPUReports(t, f)
	budget := fmt.Sprintf("error_budget: {url: %q, query: \"vector(0.9)\", min_remaining: 0.5, burn_rate_query: \"vector(14)\", max_burn_rate: 2}\n", prom)
	// A short step: were the guard not watched, the run would complete
	// (exit 0) soon rather than hold the test for minutes.
	path := writeExperiment(t, runText(url, "15s", budget))

	before := f.record(t)
	code, out, stderr := f.turbctl(t, "experiment", "run", "--dry-run", "-o", "json", path)
	var plan struct {
		ID      string `json:"id"`
		Targets []struct {
			AgentIDs []string `json:"agentIds"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &plan); code != cli.ExitOK || err != nil || plan.ID != "" || len(plan.Targets) != 1 || len(plan.Targets[0].AgentIDs) != 1 {
		t.Fatalf("run --dry-run: exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	if after := f.record(t); after != before {
		t.Errorf("after a dry run: %+v, before: %+v; it must write nothing", after, before)
	}

	code, out, stderr = f.turbctl(t, "experiment", "run", "--follow", path)
	if code != cli.ExitExperimentFailed || !strings.Contains(stderr, "ABORTED") || !strings.Contains(stderr, "error_budget.burn_rate") {
		t.Fatalf("experiment run --follow: exit %d, want %d\n%s\n%s", code, cli.ExitExperimentFailed, out, stderr)
	}
	groups, err := f.api.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 1 {
		t.Fatalf("groups = %v, %v; want the step's one", groups, err)
	}
	controllertest.WaitFor(t, waitLong, "the step's fault to be REVERTED", func() bool {
		g, err := f.api.GetFaultGroup(t.Context(), &turbulencev1.GetFaultGroupRequest{Id: groups.GetGroups()[0].GetId()})
		return err == nil && g.GetMembers()[0].GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED
	})
}
