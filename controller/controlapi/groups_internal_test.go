package controlapi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/selector"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// liveHub is a Dispatcher that only knows liveness, for the choice.
type liveHub struct {
	live map[string]agentapi.Liveness
}

func (h *liveHub) DispatchApply(*turbulencev1.Fault)                           {}
func (h *liveHub) DispatchRevert(*turbulencev1.Fault, string)                  {}
func (h *liveHub) BroadcastHalt(string)                                        {}
func (h *liveHub) BroadcastResume()                                            {}
func (h *liveHub) HeldStatus(string, string) (*turbulencev1.FaultStatus, bool) { return nil, false }
func (h *liveHub) HostMetrics() *hostseries.Store                              { return hostseries.New(0, 0) }
func (h *liveHub) Liveness(id string) (agentapi.Liveness, bool) {
	lv, ok := h.live[id]
	return lv, ok
}

// fleet registers agents web-00…web-NN (role=web, connected, cpu) in a
// state and returns a server choosing over them.
func fleet(t testing.TB, n int, cfg Config) (*Server, *liveHub) {
	t.Helper()
	st := state.New()
	hub := &liveHub{live: map[string]agentapi.Liveness{}}
	for i := range n {
		id := fmt.Sprintf("web-%02d", i)
		a := &turbulencev1.Agent{Id: id, Labels: map[string]string{"role": "web"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}}}
		if _, err := st.ApplyRegisterAgent(state.Meta{}, a); err != nil {
			t.Fatal(err)
		}
		hub.live[id] = agentapi.Liveness{Connected: true}
	}
	cfg.State, cfg.Hub = st, hub
	return New(cfg), hub
}

func cpu() *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 50}}}
}

// pick runs the choice of a group request and returns the chosen IDs.
func pick(t testing.TB, s *Server, g *turbulencev1.FaultGroup) ([]string, error) {
	t.Helper()
	if g.Spec == nil {
		g.Spec = cpu()
	}
	if g.Min == 0 {
		g.Min = 1
	}
	sel, err := selector.Parse(g.GetSelector())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.choose(g, sel); err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range g.GetMembers() {
		if state.Chosen(m) {
			ids = append(ids, m.GetAgentId())
		}
	}
	return ids, nil
}

func TestChoose_SameSeedSameChoice(t *testing.T) {
	t.Parallel()
	s, _ := fleet(t, 40, Config{MaxGroupPercent: 100})
	first, err := pick(t, s, &turbulencev1.FaultGroup{Selector: "role=web", Count: 7, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, _ := pick(t, s, &turbulencev1.FaultGroup{Selector: "role=web", Count: 7, Seed: 42})
		if !slices.Equal(first, again) {
			t.Fatalf("seed 42 chose %v, then %v", first, again)
		}
	}
	other, _ := pick(t, s, &turbulencev1.FaultGroup{Selector: "role=web", Count: 7, Seed: 43})
	if slices.Equal(first, other) {
		t.Errorf("seeds 42 and 43 both chose %v", first)
	}
	if !slices.IsSorted(first) || len(first) != 7 {
		t.Errorf("chosen = %v, want 7 agents by ID", first)
	}
}

// TestChoose_Uniform draws 5 of 20 agents with 20,000 fixed seeds and
// checks with a chi-square test that every agent is chosen about as often
// (df = 19; 43.82 is the 0.999 quantile, and the seeds are fixed, so the
// result never flakes).
func TestChoose_Uniform(t *testing.T) {
	t.Parallel()
	const agents, count, draws = 20, 5, 20000
	s, _ := fleet(t, agents, Config{MaxGroupPercent: 100})
	hits := map[string]int{}
	for seed := range uint64(draws) {
		ids, err := pick(t, s, &turbulencev1.FaultGroup{Count: count, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			hits[id]++
		}
	}
	expected := float64(draws*count) / agents
	chi2 := 0.0
	for i := range agents {
		d := float64(hits[fmt.Sprintf("web-%02d", i)]) - expected
		chi2 += d * d / expected
	}
	t.Logf("chi-square = %.2f (df 19)", chi2)
	if chi2 > 43.82 {
		t.Errorf("chi-square = %.2f over %v, above 43.82: the choice is not uniform", chi2, hits)
	}
}

func TestChoose_CapCannotBeExceeded(t *testing.T) {
	t.Parallel()
	ids := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("web-%02d", i))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		g     *turbulencev1.FaultGroup
		field string // "" when allowed
		want  int
	}{
		{"count at the percent cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{Count: 10}, "", 10},
		{"count above the percent cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{Count: 11}, "count", 0},
		{"percent at the cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{Percent: 50}, "", 10},
		{"percent above the cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{Percent: 50.1}, "percent", 0},
		{"every match above the cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{Selector: "role=web"}, "selector", 0},
		{"explicit list above the cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{AgentIds: ids(11)}, "agent_ids", 0},
		{"explicit list at the cap", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{AgentIds: ids(10)}, "", 10},
		{"count above the agent cap", Config{MaxGroupPercent: 100, MaxGroupAgents: 3}, &turbulencev1.FaultGroup{Count: 4}, "count", 0},
		{"count far above the eligible", Config{MaxGroupPercent: 50}, &turbulencev1.FaultGroup{AgentIds: ids(2), Count: 1000}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := fleet(t, 20, tc.cfg)
			got, err := pick(t, s, tc.g)
			if tc.field == "" {
				if err != nil || len(got) != tc.want {
					t.Fatalf("chose %d (%v), want %d", len(got), err, tc.want)
				}
				return
			}
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+": ") || !strings.Contains(st.Message(), "cap of") {
				t.Errorf("error = %v, want InvalidArgument naming %s and the cap", err, tc.field)
			}
		})
	}
}

func TestChoose_RefusalsPerAgent(t *testing.T) {
	t.Parallel()
	s, hub := fleet(t, 6, Config{MaxGroupPercent: 100})
	hub.live["web-01"] = agentapi.Liveness{Connected: false}
	delete(hub.live, "web-02") // never connected to this leader
	hub.live["web-03"] = agentapi.Liveness{Connected: true, LocallyHalted: true}
	if _, err := s.cfg.State.ApplyRegisterAgent(state.Meta{}, &turbulencev1.Agent{Id: "web-04", Labels: map[string]string{"role": "web"},
		Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"memory"}}}); err != nil {
		t.Fatal(err)
	}
	g := &turbulencev1.FaultGroup{Selector: "role=web", Seed: 1}
	chosen, err := pick(t, s, g)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(chosen, []string{"web-00", "web-05"}) {
		t.Errorf("chosen = %v, want web-00 and web-05", chosen)
	}
	got := map[string]string{}
	for _, m := range g.GetMembers() {
		got[m.GetAgentId()] = m.GetRefusal()
	}
	want := map[string]string{"web-00": "", "web-05": "", "web-01": "offline", "web-02": "offline", "web-03": "locally halted", "web-04": "unsupported kind"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	if g.GetMatched() != 6 || g.GetEligible() != 2 || g.GetChosen() != 2 || len(g.GetRefusals()) != 3 || g.GetRefusals()[0].GetReason() != "offline" {
		t.Errorf("counts = matched %d eligible %d chosen %d refusals %v", g.GetMatched(), g.GetEligible(), g.GetChosen(), g.GetRefusals())
	}
	// --min 3 with two eligible fails the whole call, naming why.
	_, err = pick(t, s, &turbulencev1.FaultGroup{Selector: "role=web", Min: 3})
	if !errors.Is(err, ErrGroupTooSmall) || !strings.Contains(err.Error(), "2 offline") || !strings.Contains(err.Error(), "2 eligible") {
		t.Errorf("min 3 = %v, want ErrGroupTooSmall naming the eligible count and refusals", err)
	}
}

// BenchmarkChoose10k is the choice of a dry run over 10,000 agents.
func BenchmarkChoose10k(b *testing.B) {
	s, _ := fleet(b, 10000, Config{MaxGroupPercent: 50, MaxGroupAgents: 5000})
	sel, _ := selector.Parse("role=web")
	for b.Loop() {
		g := &turbulencev1.FaultGroup{Spec: cpu(), Selector: "role=web", Percent: 10, Seed: 1, Min: 1}
		if err := s.choose(g, sel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyFaultGroup_DryRun10k is a whole dry-run call over 10,000
// connected agents (--percent 10 of role=web, which all match): the
// handler, the choice and the encoding of the answer, without the network.
// Liveness comes from a map here; agentapi.Hub answers it under one mutex.
func BenchmarkApplyFaultGroup_DryRun10k(b *testing.B) {
	s, _ := fleet(b, 10000, Config{MaxGroupPercent: 50, MaxGroupAgents: 5000})
	ca, _, _, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctx := callerCtx(b, ca, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "o"})
	req := &turbulencev1.ApplyFaultGroupRequest{Spec: cpu(), Selector: "role=web", Percent: 10, DryRun: true}
	for b.Loop() {
		g, err := s.ApplyFaultGroup(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if g.GetChosen() != 1000 {
			b.Fatalf("chose %d, want 1000", g.GetChosen())
		}
		if _, err := proto.Marshal(g); err != nil {
			b.Fatal(err)
		}
	}
}
