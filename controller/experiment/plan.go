package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Plan is what an experiment would do if it started now: the agents each
// step would hit (as the controller would choose them), the timeline and
// the probes. Making it writes nothing anywhere (see Fleet).
type Plan struct {
	Experiment string `json:"experiment"`
	Hypothesis string `json:"hypothesis"`
	Owner      string `json:"owner"`
	// Seed is the experiment's seed: the file's, the one asked for, or one
	// the plan picked (SeedPicked; a run would pick its own). Each target
	// is chosen with TargetSeed of it.
	Seed       uint64          `json:"seed"`
	SeedPicked bool            `json:"seed_picked,omitempty"`
	Targets    []TargetPlan    `json:"targets"`
	Steps      []StepPlan      `json:"steps"`
	Probes     []ProbePlan     `json:"probes"`
	FaultsEnd  config.Duration `json:"faults_end"`
	Recovery   config.Duration `json:"recovery"`
	// ErrorBudget is the guard's query and floor, when the file has one.
	ErrorBudget *ErrorBudget `json:"error_budget,omitempty"`
}

// TargetPlan is one target and the registered agents it matches.
type TargetPlan struct {
	Name     string   `json:"name"`
	Selector string   `json:"selector,omitempty"`
	AgentIDs []string `json:"agent_ids,omitempty"`
	Count    uint32   `json:"count,omitempty"`
	Percent  float64  `json:"percent,omitempty"`
	Min      uint32   `json:"min,omitempty"`
	// Matched is how many registered agents the selector and IDs match,
	// and Kinds the fault kinds at least one of them reports.
	Matched int      `json:"matched"`
	Kinds   []string `json:"kinds,omitempty"`
	// Seed is the target's own seed (TargetSeed); Group is the dry run
	// that chose it, and Chosen its chosen agents (nil when the
	// controller would refuse the choice).
	Seed   uint64     `json:"seed"`
	Group  *GroupPlan `json:"group,omitempty"`
	Chosen []string   `json:"-"`
}

// StepPlan is one step: its window and what the controller would do.
type StepPlan struct {
	Name   string          `json:"name"`
	Target string          `json:"target"`
	Start  config.Duration `json:"start"`
	End    config.Duration `json:"end"`
	After  string          `json:"after,omitempty"`
	Kind   string          `json:"kind"`
	// FaultSpec is the step's fault with its duration; Fault is the same
	// in protobuf JSON, for -o json.
	FaultSpec *turbulencev1.FaultSpec `json:"-"`
	Fault     json.RawMessage         `json:"fault"`
	// Group is the controller's dry run of the step's fault group (nil
	// when the step was not asked, see Problems of the plan's error).
	Group *GroupPlan `json:"group,omitempty"`
}

// GroupPlan is the part of a dry-run FaultGroup a plan shows.
type GroupPlan struct {
	Registered uint32    `json:"registered"`
	Matched    uint32    `json:"matched"`
	Eligible   uint32    `json:"eligible"`
	Chosen     []string  `json:"chosen"`
	Refused    []Refusal `json:"refused,omitempty"`
}

// Refusal is a matched agent the controller would not choose, and why.
type Refusal struct {
	Agent  string `json:"agent"`
	Reason string `json:"reason"`
}

// ProbePlan is one probe and where the experiment uses it.
type ProbePlan struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Detail      string          `json:"detail"`
	Interval    config.Duration `json:"interval"`
	SteadyState bool            `json:"steady_state,omitempty"`
	AbortWhen   bool            `json:"abort_when,omitempty"`
}

// Fleet is what a plan asks of the controller. Neither call writes:
// ListAgents reads, and DryRunGroup is ApplyFaultGroup with dry_run set,
// which makes the same choice with the same checks and records nothing —
// no raft entry, no audit record (docs/groups.md).
type Fleet interface {
	ListAgents(ctx context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error)
	DryRunGroup(ctx context.Context, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error)
}

// ControlFleet is a Fleet over a ControlService client.
func ControlFleet(c turbulencev1.ControlServiceClient) Fleet { return controlFleet{c} }

type controlFleet struct {
	c turbulencev1.ControlServiceClient
}

func (f controlFleet) ListAgents(ctx context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	return f.c.ListAgents(ctx, req)
}

func (f controlFleet) DryRunGroup(ctx context.Context, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	// A copy: the flag is set here, whatever the caller built, so that a
	// plan cannot apply anything by mistake.
	req = proto.CloneOf(req)
	req.DryRun = true
	return f.c.ApplyFaultGroup(ctx, req)
}

// LocalPlan is the part of the plan the file alone tells: the timeline,
// the faults and the probes, with no agents. The spec must be valid.
func (s *Spec) LocalPlan() *Plan {
	p := &Plan{
		Experiment: s.Name, Hypothesis: s.Hypothesis, Owner: s.Owner, Seed: s.Seed,
		FaultsEnd: config.Duration(s.End()), Recovery: s.Recovery, ErrorBudget: s.ErrorBudget,
	}
	for _, name := range s.targetNames() {
		t := s.Targets[name]
		p.Targets = append(p.Targets, TargetPlan{Name: name, Selector: t.Selector, AgentIDs: t.Agents, Count: t.Count, Percent: t.Percent, Min: t.Min})
	}
	for i, w := range s.Timeline() {
		st := &s.Steps[i]
		sp := StepPlan{Name: w.Step, Target: w.Target, Start: config.Duration(w.Start), End: config.Duration(w.End), After: st.After}
		if spec, err := st.FaultSpec(); err == nil {
			sp.FaultSpec, sp.Kind = spec, faultspec.Kind(spec)
			sp.Fault, _ = protojson.Marshal(spec)
		}
		p.Steps = append(p.Steps, sp)
	}
	for _, pr := range s.Probes {
		pp := ProbePlan{Name: pr.Name, Interval: pr.Interval,
			SteadyState: slices.Contains(s.SteadyState, pr.Name), AbortWhen: slices.Contains(s.AbortWhen, pr.Name)}
		pp.Kind, pp.Detail = pr.describe()
		p.Probes = append(p.Probes, pp)
	}
	return p
}

func (s *Spec) targetNames() []string {
	names := make([]string, 0, len(s.Targets))
	for n := range s.Targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// describe words a probe in a line: its kind and what passes.
func (p *Probe) describe() (kind, detail string) {
	switch {
	case p.HTTP != nil:
		d := fmt.Sprintf("GET %s answers %d within %s", p.HTTP.URL, p.HTTP.ExpectStatus, p.HTTP.Timeout.D())
		if p.HTTP.MaxLatency > 0 {
			d = fmt.Sprintf("GET %s answers %d within %s", p.HTTP.URL, p.HTTP.ExpectStatus, p.HTTP.MaxLatency.D())
		}
		return "http", d
	case p.Prometheus != nil:
		return "prometheus", fmt.Sprintf("%s %s at %s", p.Prometheus.Query, bounds(p.Prometheus.Min, p.Prometheus.Max), p.Prometheus.URL)
	case p.Host != nil:
		return "host", fmt.Sprintf("%s of every agent of %s %s", p.Host.Metric, p.Host.Target, bounds(p.Host.Min, p.Host.Max))
	}
	return "", ""
}

func bounds(lo, hi *float64) string {
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("in [%g, %g]", *lo, *hi)
	case lo != nil:
		return fmt.Sprintf(">= %g", *lo)
	case hi != nil:
		return fmt.Sprintf("<= %g", *hi)
	}
	return ""
}

// MakePlan asks the controller, through fleet, which agents each target
// would be and what each step would ask of them, the way the runner does
// it: each target is chosen once, by a dry run of its first step's fault
// group with the target's selector, caps and TargetSeed; each step is then
// a dry run of its fault on the chosen agents. seed, when not nil,
// replaces the file's; with neither, the plan picks one and says so (a
// run picks its own). The spec must be valid (Validate).
//
// What the controller would refuse is returned as an *Error alongside the
// plan (the plan still shows the rest): a target that matches no
// registered agent; a fault kind none of a target's agents supports; a
// choice above the controller's caps or below min; a halted fleet. An
// error in reaching the controller is returned as it is, with no plan.
func MakePlan(ctx context.Context, s *Spec, fleet Fleet, seed *uint64) (*Plan, error) {
	p := s.LocalPlan()
	var c collector
	switch {
	case seed != nil:
		p.Seed = *seed
	case p.Seed == 0:
		p.Seed, p.SeedPicked = rand.Uint64()|1, true
	}
	for i := range p.Targets {
		if err := p.chooseTarget(ctx, &c, s, fleet, &p.Targets[i]); err != nil {
			return nil, err
		}
	}
	targets := make(map[string]*TargetPlan, len(p.Targets))
	for i := range p.Targets {
		targets[p.Targets[i].Name] = &p.Targets[i]
	}
	for i := range p.Steps {
		sp := &p.Steps[i]
		path := fmt.Sprintf("steps[%d]", i)
		tp := targets[sp.Target]
		switch {
		case tp == nil || sp.FaultSpec == nil:
			return nil, errors.New("experiment: MakePlan needs a valid spec (run Validate first)")
		case tp.Chosen == nil:
			continue // the target's problem is reported
		case !slices.Contains(tp.Kinds, sp.Kind):
			c.addf(path+".fault", "no agent of target %q supports %s faults (the %d it matches report: %s)",
				sp.Target, sp.Kind, tp.Matched, orNone(tp.Kinds))
			continue
		}
		g, err := fleet.DryRunGroup(ctx, &turbulencev1.ApplyFaultGroupRequest{
			Spec: sp.FaultSpec, AgentIds: tp.Chosen, Seed: proto.Uint64(tp.Seed), Min: 1, DryRun: true,
		})
		if err != nil {
			if !refusal(&c, path, "targets."+sp.Target, err) {
				return nil, err
			}
			continue
		}
		sp.Group = groupPlan(g)
	}
	return p, c.err()
}

// chooseTarget fills in what the controller says of one target: the
// registered agents it matches, the fault kinds they report, and the
// agents a dry run of its first step chooses.
func (p *Plan) chooseTarget(ctx context.Context, c *collector, s *Spec, fleet Fleet, tp *TargetPlan) error {
	path := "targets." + tp.Name
	tp.Seed = TargetSeed(p.Seed, tp.Name)
	agents, err := listAll(ctx, fleet, tp.Selector, tp.AgentIDs)
	if err != nil {
		return err
	}
	tp.Matched = len(agents)
	kinds := map[string]bool{}
	for _, a := range agents {
		for _, k := range a.GetCapabilities().GetFaultKinds() {
			kinds[k] = true
		}
	}
	for k := range kinds {
		tp.Kinds = append(tp.Kinds, k)
	}
	slices.Sort(tp.Kinds)
	if tp.Matched == 0 {
		c.addf(path, "matches no registered agent (%s)", targetWords(tp))
		return nil
	}
	i := targetStep(s, tp.Name)
	sp := &p.Steps[i]
	if !slices.Contains(tp.Kinds, sp.Kind) {
		c.addf(fmt.Sprintf("steps[%d].fault", i), "no agent of target %q supports %s faults (the %d it matches report: %s)",
			tp.Name, sp.Kind, tp.Matched, orNone(tp.Kinds))
		return nil
	}
	g, err := fleet.DryRunGroup(ctx, &turbulencev1.ApplyFaultGroupRequest{
		Spec: sp.FaultSpec, Selector: tp.Selector, AgentIds: tp.AgentIDs,
		Count: tp.Count, Percent: tp.Percent, Min: tp.Min, Seed: proto.Uint64(tp.Seed), DryRun: true,
	})
	if err != nil {
		if !refusal(c, path, path, err) {
			return err
		}
		return nil
	}
	tp.Group = groupPlan(g)
	if n := len(tp.Group.Chosen); n > MaxTargetAgents {
		c.addf(path, "would choose %d agents, above the limit of %d per target: set count or percent", n, MaxTargetAgents)
		return nil
	}
	tp.Chosen = tp.Group.Chosen
	return nil
}

// targetStep is the step a target is chosen for: its first step, so that
// only agents able to take that fault are eligible; a target that only
// host probes watch is chosen for the first step of the file.
func targetStep(s *Spec, target string) int {
	return max(slices.IndexFunc(s.Steps, func(st Step) bool { return st.Target == target }), 0)
}

// TargetSeed is the seed a target is chosen with: the experiment's, mixed
// with the target's name, so that two targets with the same selector do
// not choose the same agents. The plan and the runner both use it, so
// that a plan with the run's seed shows the run's choice.
func TargetSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return seed ^ h.Sum64()
}

// listAll pages through the registered agents a target matches.
func listAll(ctx context.Context, fleet Fleet, sel string, ids []string) ([]*turbulencev1.Agent, error) {
	var out []*turbulencev1.Agent
	token := ""
	for {
		resp, err := fleet.ListAgents(ctx, &turbulencev1.ListAgentsRequest{PageSize: limits.MaxPageAgents, PageToken: token, Selector: sel, Ids: ids})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetAgents()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

func targetWords(tp *TargetPlan) string {
	var parts []string
	if tp.Selector != "" {
		parts = append(parts, "selector "+tp.Selector)
	}
	if len(tp.AgentIDs) > 0 {
		parts = append(parts, "agents "+strings.Join(tp.AgentIDs, ","))
	}
	return strings.Join(parts, ", ")
}

func orNone(kinds []string) string {
	if len(kinds) == 0 {
		return "no fault kind"
	}
	return strings.Join(kinds, ", ")
}

// groupFields maps an ApplyFaultGroup field to the file's.
var groupFields = map[string]string{"count": "count", "percent": "percent", "min": "min", "selector": "selector", "agent_ids": "agents"}

// refusal records a dry run the controller refused as a problem of the
// file, and reports whether err was such a refusal (InvalidArgument or
// FailedPrecondition) rather than a failure to ask.
func refusal(c *collector, stepPath, targetPath string, err error) bool {
	// The status itself, not status.FromError's: through a wrapping
	// error (turbctl's) that one's message is the whole wrapped text.
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	st := se.GRPCStatus()
	switch st.Code() {
	case codes.InvalidArgument:
		found := false
		for _, d := range st.Details() {
			br, ok := d.(*errdetails.BadRequest)
			if !ok {
				continue
			}
			for _, v := range br.GetFieldViolations() {
				found = true
				field := stepPath + ".fault"
				if f, ok := groupFields[v.GetField()]; ok {
					field = targetPath + "." + f
				} else if rest, ok := strings.CutPrefix(v.GetField(), "spec"); ok {
					field += rest
				}
				c.addUnique(field, "the controller refuses it: "+v.GetDescription())
			}
		}
		if !found {
			c.addUnique(stepPath, "the controller refuses it: "+st.Message())
		}
		return true
	case codes.FailedPrecondition:
		c.addUnique(stepPath, "the controller refuses it: "+st.Message())
		return true
	}
	return false
}

func groupPlan(g *turbulencev1.FaultGroup) *GroupPlan {
	gp := &GroupPlan{Registered: g.GetRegistered(), Matched: g.GetMatched(), Eligible: g.GetEligible(), Chosen: []string{}}
	for _, m := range g.GetMembers() {
		if m.GetRefusal() == "" {
			gp.Chosen = append(gp.Chosen, m.GetAgentId())
		} else {
			gp.Refused = append(gp.Refused, Refusal{Agent: m.GetAgentId(), Reason: m.GetRefusal()})
		}
	}
	return gp
}
