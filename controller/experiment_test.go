package controller_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// service is a real HTTP service on loopback whose health the test
// flips; failingSince records when it started failing.
type service struct {
	*httptest.Server
	failing      atomic.Bool
	failingSince atomic.Int64
}

func startService(t testing.TB) *service {
	t.Helper()
	s := &service{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

// fail makes the service answer 503 from now on and returns when.
func (s *service) fail() time.Time {
	now := time.Now()
	s.failingSince.Store(now.UnixNano())
	s.failing.Store(true)
	return now
}

// experimentFile is an experiment hitting agents with a cpu fault of
// duration, probing url every 100 ms.
func experimentFile(url string, agents []string, duration, recovery string) []byte {
	return fmt.Appendf(nil, `name: web-cpu
hypothesis: the service answers while two agents burn CPU
owner: team-test
seed: 7
targets:
  web:
    agents: [%s]
steps:
  - name: burn
    target: web
    duration: %s
    fault: {cpu: {cores: 1, load_percent: 10}}
probes:
  - name: home
    interval: 100ms
    http: {url: %q, timeout: 1s}
steady_state: [home]
abort_when: [home]
recovery: %s
`, strings.Join(agents, ", "), duration, url+"/healthz", recovery)
}

// fleet starts n following agents on srv's controllers and waits until
// they are connected.
func fleet(t testing.TB, srv *controllertest.Server, addrs []string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("web-%d", i)
		a, err := controllertest.StartFollowingAgent(id, addrs, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		ids = append(ids, id)
	}
	controllertest.WaitFor(t, 15*time.Second, "the agents to connect", func() bool {
		g, err := srv.AdminClient(t).ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
			Spec: cpuFault("").GetSpec(), AgentIds: ids, DryRun: true, Count: 1})
		return err == nil && int(g.GetEligible()) == n
	})
	return ids
}

// waitExperiment polls an experiment until cond holds and returns it.
func waitExperiment(t testing.TB, c turbulencev1.ControlServiceClient, id string, timeout time.Duration, what string, cond func(*turbulencev1.Experiment) bool) *turbulencev1.Experiment {
	t.Helper()
	var x *turbulencev1.Experiment
	controllertest.WaitFor(t, timeout, what, func() bool {
		got, err := c.GetExperiment(t.Context(), &turbulencev1.GetExperimentRequest{Id: id, WithSamples: true})
		if err != nil {
			return false
		}
		x = got
		return cond(x)
	})
	return x
}

func ended(x *turbulencev1.Experiment) bool { return !state.ExperimentLive(x.GetState()) }

func stepStarted(x *turbulencev1.Experiment) bool {
	return len(x.GetSteps()) > 0 && x.GetSteps()[0].GetGroupId() != ""
}

// groupFaults returns the member faults of the experiment's groups.
func groupFaults(t testing.TB, c turbulencev1.ControlServiceClient, x *turbulencev1.Experiment) []*turbulencev1.Fault {
	t.Helper()
	var out []*turbulencev1.Fault
	for _, st := range x.GetSteps() {
		if st.GetGroupId() == "" {
			continue
		}
		g, err := c.GetFaultGroup(t.Context(), &turbulencev1.GetFaultGroupRequest{Id: st.GetGroupId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range g.GetMembers() {
			if m.GetFaultId() == "" {
				continue
			}
			f, err := c.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: m.GetFaultId()})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	return out
}

func allReverted(fs []*turbulencev1.Fault) bool {
	for _, f := range fs {
		if f.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
			return false
		}
	}
	return len(fs) > 0
}

func TestExperiment_HealthyProbeCompletes(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	ids := fleet(t, srv, []string{srv.Addr}, 4)
	svc := startService(t)
	admin := srv.AdminClient(t)
	x, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{
		RequestId: "exp-1", Spec: experimentFile(svc.URL, ids[:2], "2s", "5s")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(x.GetId(), "x-") || x.GetSeed() != 7 {
		t.Errorf("started = %s seed %d, want an x- id and the file's seed 7", x.GetId(), x.GetSeed())
	}
	x = waitExperiment(t, admin, x.GetId(), 30*time.Second, "the experiment to end", ended)
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED || x.GetVerdict() != turbulencev1.Verdict_VERDICT_PASSED {
		t.Fatalf("experiment ended %s %s: %s", x.GetState(), x.GetVerdict(), x.GetReason())
	}
	if len(x.GetTargets()) != 1 || len(x.GetTargets()[0].GetAgentIds()) != 2 {
		t.Errorf("targets = %v, want web with 2 agents", x.GetTargets())
	}
	st := x.GetSteps()[0]
	if st.GetStartedAt() == nil || st.GetEndedAt() == nil || st.GetKind() != "cpu" {
		t.Errorf("step = %v, want a started and ended cpu step", st)
	}
	if len(x.GetSeries()) != 1 || len(x.GetSeries()[0].GetSamples()) < 10 {
		t.Errorf("series = %d, want the home probe's samples (at least 10 over 2 s)", len(x.GetSeries()))
	}
	for _, f := range groupFaults(t, admin, x) {
		if f.GetState() == turbulencev1.FaultState_FAULT_STATE_PENDING || f.GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED {
			t.Errorf("fault %s on %s is %s, want it applied", f.GetId(), f.GetAgentId(), f.GetState())
		}
	}
	// A retry of the start is the same experiment.
	again, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{
		RequestId: "exp-1", Spec: experimentFile(svc.URL, ids[:2], "2s", "5s")})
	if err != nil || again.GetId() != x.GetId() {
		t.Errorf("retry = %v, %v; want experiment %s", again.GetId(), err, x.GetId())
	}
	list, err := admin.ListExperiments(t.Context(), &turbulencev1.ListExperimentsRequest{})
	if err != nil || len(list.GetExperiments()) != 1 {
		t.Errorf("list = %v, %v; want one experiment", list, err)
	}
}

func TestExperiment_FailingProbeAbortsAndRevertsEverything(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	ids := fleet(t, srv, []string{srv.Addr}, 4)
	svc := startService(t)
	admin := srv.AdminClient(t)
	x, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
	if err != nil {
		t.Fatal(err)
	}
	waitExperiment(t, admin, x.GetId(), 20*time.Second, "the step to start", stepStarted)
	svc.fail()
	x = waitExperiment(t, admin, x.GetId(), 20*time.Second, "the experiment to end", ended)
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetFailedProbe() != "home" ||
		!strings.Contains(x.GetReason(), "probe home failed") || !strings.Contains(x.GetReason(), "503") {
		t.Fatalf("experiment ended %s (probe %q value %v): %s; want ABORTED by probe home's 503", x.GetState(), x.GetFailedProbe(), x.GetFailedValue(), x.GetReason())
	}
	controllertest.WaitFor(t, 10*time.Second, "every fault of the experiment to be REVERTED", func() bool {
		return allReverted(groupFaults(t, admin, x))
	})
	if n := len(groupFaults(t, admin, x)); n != 2 {
		t.Errorf("%d faults, want 2", n)
	}
}

func TestExperiment_SteadyStateRefusesTheStart(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	ids := fleet(t, srv, []string{srv.Addr}, 4)
	svc := startService(t)
	svc.fail()
	admin := srv.AdminClient(t)
	x, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
	if err != nil {
		t.Fatal(err)
	}
	x = waitExperiment(t, admin, x.GetId(), 20*time.Second, "the experiment to end", ended)
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_REFUSED || x.GetFailedProbe() != "home" || !strings.Contains(x.GetReason(), "steady state does not hold") {
		t.Errorf("experiment ended %s (probe %q): %s; want REFUSED by home", x.GetState(), x.GetFailedProbe(), x.GetReason())
	}
	groups, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 0 {
		t.Errorf("groups = %v, %v; want none: a refused experiment applies nothing", groups, err)
	}
}

func TestExperiment_BadFileChangesNothing(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	before := srv.Controller.LastRaftIndex()
	bad := strings.Replace(string(experimentFile("http://127.0.0.1:1", []string{"a"}, "5m", "5s")), "load_percent: 10", "load_percent: 500", 1)
	bad = strings.Replace(bad, `http: {url: "http://`, `http: {url: "ftp://`, 1)
	_, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: []byte(bad)})
	wantCode(t, err, codes.InvalidArgument, "probes[0].http.url", "steps[0].fault")
	if after := srv.Controller.LastRaftIndex(); after != before {
		t.Errorf("raft index moved from %d to %d: a refused file proposed something", before, after)
	}
}

func TestExperiment_AbortByHandAndByHalt(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	ids := fleet(t, srv, []string{srv.Addr}, 4)
	svc := startService(t)
	admin := srv.AdminClient(t)
	start := func() *turbulencev1.Experiment {
		x, err := admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
		if err != nil {
			t.Fatal(err)
		}
		return waitExperiment(t, admin, x.GetId(), 20*time.Second, "the step to start", stepStarted)
	}
	x := start()
	got, err := admin.AbortExperiment(t.Context(), &turbulencev1.AbortExperimentRequest{Id: x.GetId(), Reason: "game day over"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || !strings.Contains(got.GetReason(), "game day over") {
		t.Errorf("after abort: %s %q", got.GetState(), got.GetReason())
	}
	controllertest.WaitFor(t, 10*time.Second, "the aborted experiment's faults to be REVERTED", func() bool {
		return allReverted(groupFaults(t, admin, got))
	})
	if _, err := admin.AbortExperiment(t.Context(), &turbulencev1.AbortExperimentRequest{Id: x.GetId()}); err == nil {
		t.Error("a second abort of an ended experiment succeeded")
	}

	x = start()
	if _, err := admin.Halt(t.Context(), &turbulencev1.HaltRequest{Reason: "stop everything"}); err != nil {
		t.Fatal(err)
	}
	x = waitExperiment(t, admin, x.GetId(), 10*time.Second, "the halted experiment to end", ended)
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetReason() != "fleet halted" {
		t.Errorf("after halt: %s %q, want ABORTED \"fleet halted\"", x.GetState(), x.GetReason())
	}
	_, err = admin.StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
	wantCode(t, err, codes.FailedPrecondition, "halted")
}

// TestCluster_ExperimentFailoverAborts starts an experiment through a
// follower and crashes the leader while it runs: the new leader follows the failover rule, reverting
// the experiment's group and ending it ABORTED.
func TestCluster_ExperimentFailoverAborts(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	ids := fleet(t, old.Server, c.Addrs(), 4)
	svc := startService(t)
	var follower *controllertest.Node
	// On a loaded machine the cluster may change leaders by itself
	// before the step starts; the rule then ends the experiment at once
	// (ABORTED, leader changed), and the test starts another.
	var x *turbulencev1.Experiment
	for attempt := 1; ; attempt++ {
		old = c.WaitLeader(t, failoverLimit)
		follower = c.Followers()[0]
		// Through a follower: the start is forwarded to the leader,
		// whose runner takes it.
		started, err := follower.AdminClient(t).StartExperiment(t.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
		if err != nil {
			t.Fatal(err)
		}
		x = waitExperiment(t, follower.AdminClient(t), started.GetId(), 20*time.Second, "the step to start (seen on a follower)",
			func(x *turbulencev1.Experiment) bool { return stepStarted(x) || ended(x) })
		if !ended(x) {
			break
		}
		if x.GetReason() != "leader changed: probe history incomplete" || attempt == 3 {
			t.Fatalf("experiment ended before the crash: %s %q", x.GetState(), x.GetReason())
		}
		t.Logf("attempt %d: the leader changed by itself before the step started; the rule aborted it; again", attempt)
	}
	if err := old.Crash(); err != nil {
		t.Fatalf("crash leader: %v", err)
	}
	leader := c.WaitLeader(t, failoverLimit)
	admin := leader.AdminClient(t)
	x = waitExperiment(t, admin, x.GetId(), 20*time.Second, "the new leader to end the experiment", ended)
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetReason() != "leader changed: probe history incomplete" {
		t.Fatalf("after failover: %s %q, want ABORTED by the failover rule", x.GetState(), x.GetReason())
	}
	controllertest.WaitFor(t, 20*time.Second, "the experiment's faults to be REVERTED", func() bool {
		return allReverted(groupFaults(t, admin, x))
	})
}

// wantCode fails unless err is a gRPC status with code and a message
// holding every one of parts.
func wantCode(t *testing.T, err error, code codes.Code, parts ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("error %q does not mention %q", st.Message(), p)
		}
	}
}
