package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/fsm"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// localRaft applies entries to a state through the real FSM, in the
// caller's goroutine: a one-node log without the network.
type localRaft struct {
	mu  sync.Mutex
	f   *fsm.FSM
	idx uint64
	// refuse, when set, fails every write (a deposed leader).
	refuse atomic.Bool
}

func (l *localRaft) Apply(_ context.Context, e *raftv1.LogEntry) (any, error) {
	if l.refuse.Load() {
		return nil, errors.New("not the leader")
	}
	data, err := proto.Marshal(e)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx++
	resp := l.f.Apply(&raft.Log{Index: l.idx, Type: raft.LogCommand, Data: data})
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

// groups records the runner's group calls; it chooses every agent named
// and records applied groups in the state like the control API.
type groups struct {
	raft     *localRaft
	mu       sync.Mutex
	applied  []string
	reverted []string
	// failReverts is how many reverts fail before they succeed.
	failReverts int
}

func (g *groups) ApplyGroupFor(ctx context.Context, _ tlsutil.Identity, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	grp := &turbulencev1.FaultGroup{Spec: req.GetSpec(), AgentIds: req.GetAgentIds(), Chosen: uint32(len(req.GetAgentIds()))}
	for _, a := range req.GetAgentIds() {
		grp.Members = append(grp.Members, &turbulencev1.GroupMember{AgentId: a})
	}
	if req.GetDryRun() {
		return grp, nil
	}
	g.mu.Lock()
	grp.Id = fmt.Sprintf("g%d", len(g.applied)+1)
	g.applied = append(g.applied, grp.GetId())
	g.mu.Unlock()
	for _, m := range grp.GetMembers() {
		m.FaultId = grp.GetId() + "-" + m.GetAgentId()
	}
	resp, err := g.raft.Apply(ctx, &raftv1.LogEntry{RequestId: req.GetRequestId(), Cmd: &raftv1.LogEntry_CreateFaultGroup{CreateFaultGroup: &raftv1.CreateFaultGroup{Group: grp}}})
	if err != nil {
		return nil, err
	}
	return resp.(*turbulencev1.FaultGroup), nil
}

func (g *groups) RevertGroupFor(_ context.Context, _ tlsutil.Identity, _, groupID, _ string) (*turbulencev1.FaultGroup, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failReverts > 0 {
		g.failReverts--
		return nil, errors.New("not the leader")
	}
	g.reverted = append(g.reverted, groupID)
	return &turbulencev1.FaultGroup{Id: groupID}, nil
}

func (g *groups) calls() (applied, reverted []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.applied), slices.Clone(g.reverted)
}

// flag is a prober whose samples pass while ok is true.
type flag struct {
	name string
	ok   atomic.Bool
}

func (f *flag) Name() string            { return f.name }
func (f *flag) Interval() time.Duration { return 100 * time.Millisecond }
func (f *flag) Sample(context.Context) Sample {
	if f.ok.Load() {
		return Sample{At: time.Now(), Value: 200, Pass: true}
	}
	return Sample{At: time.Now(), Value: 503, Detail: "status 503"}
}

type probes struct{ home *flag }

func (p probes) New(experiment.Probe, []string) (Prober, error) { return p.home, nil }
func (probes) Budget(context.Context, *experiment.ErrorBudget) (float64, error) {
	return 1, nil
}
func (probes) BurnRate(*experiment.ErrorBudget) (Prober, error) { return nil, errors.New("none") }

const file = `name: web-cpu
hypothesis: the service answers while two agents burn CPU
owner: team-test
seed: 7
targets:
  web:
    agents: [a1, a2]
steps:
  - name: burn
    target: web
    start: 1s
    duration: 1m
    fault: {cpu: {cores: 1, load_percent: 10}}
  - name: burn-more
    target: web
    start: 2s
    duration: 1m
    fault: {cpu: {cores: 1, load_percent: 20}}
probes:
  - name: home
    http: {url: "http://127.0.0.1:1/healthz"}
steady_state: [home]
abort_when: [home]
`

type fixture struct {
	st     *state.State
	raft   *localRaft
	groups *groups
	home   *flag
	r      *Runner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := state.New()
	lr := &localRaft{f: fsm.New(st, nil)}
	fx := &fixture{st: st, raft: lr, groups: &groups{raft: lr}, home: &flag{name: "home"}}
	fx.home.ok.Store(true)
	fx.r = New(Config{Raft: lr, State: st, Groups: fx.groups, Probes: probes{home: fx.home}})
	for _, id := range []string{"a1", "a2"} {
		if _, err := lr.Apply(t.Context(), &raftv1.LogEntry{Cmd: &raftv1.LogEntry_RegisterAgent{RegisterAgent: &raftv1.RegisterAgent{Agent: &turbulencev1.Agent{Id: id}}}}); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

func (fx *fixture) create(t *testing.T, id string) {
	t.Helper()
	if _, err := fx.raft.Apply(t.Context(), &raftv1.LogEntry{Cmd: &raftv1.LogEntry_CreateExperiment{CreateExperiment: &raftv1.CreateExperiment{
		Experiment: &turbulencev1.Experiment{Id: id, Name: "web-cpu", Seed: 7, Spec: []byte(file)},
	}}}); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) experiment(t *testing.T, id string) *turbulencev1.Experiment {
	t.Helper()
	x, ok := fx.st.Experiment(id, true)
	if !ok {
		t.Fatalf("experiment %s not found", id)
	}
	return x
}

// TestRunner_FirstFailingSampleRevertsEveryGroupAtOnce runs in a
// synctest bubble: the abort is recorded at the very instant of the
// failing sample (no timer, no flush interval in between), with both
// steps' groups reverted.
func TestRunner_FirstFailingSampleRevertsEveryGroupAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = fx.r.Run(ctx) }()
		synctest.Wait()
		fx.create(t, "x1")
		if err := fx.r.Launch("x1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // fake time: both steps have started
		synctest.Wait()
		if applied, _ := fx.groups.calls(); len(applied) != 2 {
			t.Fatalf("applied %v, want both steps' groups", applied)
		}
		fx.home.ok.Store(false)
		failedAt := time.Now()
		time.Sleep(100 * time.Millisecond) // the next sample
		synctest.Wait()
		x := fx.experiment(t, "x1")
		if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetFailedProbe() != "home" || x.GetFailedValue() != 503 {
			t.Fatalf("experiment %s probe %q value %v: %s", x.GetState(), x.GetFailedProbe(), x.GetFailedValue(), x.GetReason())
		}
		if took := x.GetEndedAt().AsTime().Sub(failedAt); took > 100*time.Millisecond {
			t.Errorf("recorded %s after the service failed, want within one probe interval", took)
		}
		_, reverted := fx.groups.calls()
		slices.Sort(reverted)
		if !slices.Equal(reverted, []string{"g1", "g2"}) {
			t.Errorf("reverted %v, want g1 and g2", reverted)
		}
		for _, st := range x.GetSteps() {
			if st.GetEndedAt() == nil {
				t.Errorf("step %s has no end after the abort", st.GetName())
			}
		}
		cancel()
		<-done
	})
}

// TestRunner_NewTermAbortsOrphansByDerivedRequestID records a step's
// group without the step's record (the old leader died in between): the
// new term's runner still finds and reverts it.
func TestRunner_NewTermAbortsOrphansByDerivedRequestID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t)
		fx.create(t, "x1")
		if _, err := fx.raft.Apply(t.Context(), &raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateExperiment{UpdateExperiment: &raftv1.UpdateExperiment{
			Id: "x1", State: turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING,
			Steps: []*turbulencev1.ExperimentStep{{Name: "burn", Duration: durationpb.New(time.Minute)}},
		}}}); err != nil {
			t.Fatal(err)
		}
		g, err := fx.groups.ApplyGroupFor(t.Context(), actor("x1"), &turbulencev1.ApplyFaultGroupRequest{
			RequestId: stepRequestID("x1", "burn"), AgentIds: []string{"a1"},
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		// The first revert fails: the term tries again.
		fx.groups.failReverts = 1
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = fx.r.Run(ctx) }()
		synctest.Wait()
		if x := fx.experiment(t, "x1"); x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING {
			t.Errorf("after a failed revert: %s, want still RUNNING (never ended while a group may be live)", x.GetState())
		}
		time.Sleep(orphanRetry)
		synctest.Wait()
		x := fx.experiment(t, "x1")
		if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetReason() != ReasonLeaderChanged {
			t.Errorf("orphan = %s %q, want ABORTED %q", x.GetState(), x.GetReason(), ReasonLeaderChanged)
		}
		if _, reverted := fx.groups.calls(); !slices.Equal(reverted, []string{g.GetId()}) {
			t.Errorf("reverted %v, want %s", reverted, g.GetId())
		}
		cancel()
		<-done
	})
}

// TestRunner_LostLeadershipWritesNothing ends the term mid-run: the run
// stops without recording an end (the next leader's rule decides it).
func TestRunner_LostLeadershipWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = fx.r.Run(ctx) }()
		synctest.Wait()
		fx.create(t, "x1")
		if err := fx.r.Launch("x1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		fx.raft.refuse.Store(true)
		cancel()
		<-done
		if x := fx.experiment(t, "x1"); x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING {
			t.Errorf("after the term ended: %s, want still RUNNING for the next leader", x.GetState())
		}
		if err := fx.r.Launch("x1"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Launch after the term = %v, want ErrNotLeader", err)
		}
	})
}

// TestRunner_StepWhoseFaultsAllFailAborts: when the agents refuse every
// fault of a running step, the experiment is aborted rather than left to
// judge a fault that never ran.
func TestRunner_StepWhoseFaultsAllFailAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = fx.r.Run(ctx) }()
		synctest.Wait()
		fx.create(t, "x1")
		if err := fx.r.Launch("x1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // the first step has started
		synctest.Wait()
		for _, a := range []string{"a1", "a2"} {
			if _, err := fx.raft.Apply(t.Context(), &raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
				FaultId: "g1-" + a, State: turbulencev1.FaultState_FAULT_STATE_FAILED, Reason: "refused by agent policy",
			}}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second) // a flush tick
		synctest.Wait()
		x := fx.experiment(t, "x1")
		if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || !strings.Contains(x.GetReason(), "every fault of group g1 failed") {
			t.Errorf("experiment %s: %q, want ABORTED as every fault of g1 failed", x.GetState(), x.GetReason())
		}
		cancel()
		<-done
	})
}
