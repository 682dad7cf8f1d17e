package controlapi

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/selector"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Defaults of the controller's caps on one group call (docs/groups.md).
const (
	DefaultMaxGroupPercent = 50
	DefaultMaxGroupAgents  = 1000
)

// ApplyFaultGroup chooses a bounded, reproducible slice of the fleet and
// records one fault per chosen agent, all in one raft entry; with
// dry_run, it makes the same choice and writes nothing.
func (s *Server) ApplyFaultGroup(ctx context.Context, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	g, err := s.applyFaultGroup(ctx, caller, req)
	if err != nil {
		s.logger.Info("fault group refused", "selector", req.GetSelector(), "by", caller.String(), "error", err)
		return nil, toStatus(err)
	}
	return g, nil
}

func (s *Server) applyFaultGroup(ctx context.Context, caller tlsutil.Identity, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	// A retry of a recorded call returns its group, whatever changed since.
	if !req.GetDryRun() {
		if g, ok := s.recordedGroup(req.GetRequestId()); ok {
			return s.overlayGroup(g), nil
		}
	}
	// Invariant 6: every check, and the whole choice, before anything is
	// proposed.
	spec, sel, err := s.validateGroup(req)
	if err != nil {
		return nil, err
	}
	// Invariant 5: no new fault while the fleet is halted, dry run or not
	// (a plan that cannot run is no plan).
	if h := s.cfg.State.Halt(); h.GetHalted() {
		return nil, haltedError(h)
	}
	seed := req.GetSeed()
	if req.Seed == nil {
		seed = rand.Uint64()
	}
	now := time.Now()
	g := &turbulencev1.FaultGroup{
		Spec:      spec,
		Selector:  req.GetSelector(),
		AgentIds:  req.GetAgentIds(),
		Count:     req.GetCount(),
		Percent:   req.GetPercent(),
		Seed:      seed,
		Min:       max(req.GetMin(), 1),
		CreatedAt: timestamppb.New(now),
		CreatedBy: caller.String(),
		DryRun:    req.GetDryRun(),
	}
	if err := s.choose(g, sel); err != nil {
		return nil, err
	}
	if g.GetDryRun() {
		// No raft entry and no audit record: nothing happened.
		return g, nil
	}
	g.Id = newID("g-")
	for _, m := range g.GetMembers() {
		if state.Chosen(m) {
			m.FaultId = newID("f-")
		}
	}
	created, err := proposeCreate[*turbulencev1.FaultGroup](ctx, s, req.GetRequestId(), caller.String(), now, &raftv1.LogEntry{
		Cmd: &raftv1.LogEntry_CreateFaultGroup{CreateFaultGroup: &raftv1.CreateFaultGroup{Group: g}},
	})
	if err != nil {
		return nil, err
	}
	// Members are dispatched only now that the one entry is committed, and
	// only by the call that made the group: a concurrent retry of the same
	// request ID got the first group, dispatched already.
	if created.GetId() == g.GetId() {
		for _, m := range created.GetMembers() {
			if f, ok := s.cfg.State.Fault(m.GetFaultId()); ok && state.Chosen(m) {
				s.cfg.Hub.DispatchApply(f)
			}
		}
		s.logger.Info("fault group created", "group_id", created.GetId(), "kind", faultspec.Kind(spec),
			"chosen", created.GetChosen(), "eligible", created.GetEligible(), "seed", created.GetSeed(), "by", caller.String())
	}
	return s.overlayGroup(created), nil
}

// recordedGroup returns the group a request ID already made. Writes
// reach this handler only on a leader that has passed its barrier
// (controller.forwardGate), so every entry an earlier leader committed
// is applied here: a retry after a leader change finds the first group.
func (s *Server) recordedGroup(requestID string) (*turbulencev1.FaultGroup, bool) {
	if resultID, ok := s.cfg.State.AppliedResult(requestID); ok {
		return s.cfg.State.FaultGroup(resultID)
	}
	return nil, false
}

// validateGroup checks a group request, returning every problem at once
// (InvalidArgument naming each field), and the filled spec and parsed
// selector.
func (s *Server) validateGroup(req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultSpec, selector.Selector, error) {
	spec, problems, err := s.checkSpec(req.GetSpec())
	if err != nil {
		return nil, selector.Selector{}, err
	}
	bad := func(field, format string, args ...any) {
		problems = append(problems, faultspec.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	sel, err := selector.Parse(req.GetSelector())
	if err != nil {
		bad("selector", "%v", err)
	}
	p := req.GetPercent()
	switch {
	case req.GetCount() > 0 && p != 0:
		bad("percent", "give count or percent, not both")
	case math.IsNaN(p) || p < 0 || p > 100:
		bad("percent", "%v is not in (0, 100]", p)
	}
	if c := req.GetCount(); c > 0 && req.GetMin() > c {
		bad("min", "%d is above count %d: the call could never succeed", req.GetMin(), c)
	}
	if len(problems) > 0 {
		return nil, selector.Selector{}, invalidGroup(problems)
	}
	return spec, sel, nil
}

// invalidGroup is InvalidArgument listing every problem of a group
// request, with one BadRequest field violation each (invariant 6).
func invalidGroup(problems []faultspec.FieldError) error {
	return invalidProblems("invalid fault group request", problems)
}

// invalidProblems is InvalidArgument saying what, then every problem,
// with one BadRequest field violation each.
func invalidProblems(what string, problems []faultspec.FieldError) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: p.Field, Description: p.Reason})
		msgs[i] = p.Field + ": " + p.Reason
	}
	st := status.New(codes.InvalidArgument, what+": "+strings.Join(msgs, "; "))
	if d, err := st.WithDetails(br); err == nil {
		st = d
	}
	return st.Err()
}

// candidate is a matched agent during a choice.
type candidate struct {
	id      string
	refusal string
}

// choose fills g's members and counts: candidates are the registered
// agents that the selector and the explicit IDs match, by ID; eligible
// are those connected now, not locally halted and able to take the spec
// (checkAgent); the choice is a shuffle of the eligible, by ID, with a
// PCG generator seeded with g.seed, of which the first N are taken. The
// same state and the same seed give the same choice, exactly. It refuses
// a choice above the controller's caps or below g.min.
func (s *Server) choose(g *turbulencev1.FaultGroup, sel selector.Selector) error {
	var ids map[string]bool
	if len(g.GetAgentIds()) > 0 {
		ids = make(map[string]bool, len(g.GetAgentIds()))
		for _, id := range g.GetAgentIds() {
			ids[id] = true
		}
	}
	var cands []candidate
	registered := 0
	s.cfg.State.ScanAgents(func(a *turbulencev1.Agent) {
		registered++
		if (ids != nil && !ids[a.GetId()]) || !sel.Matches(a.GetLabels()) {
			return
		}
		c := candidate{id: a.GetId()}
		if r := checkAgent(a, g.GetSpec()); r != nil {
			c.refusal = r.Short
		}
		cands = append(cands, c)
	})
	// Liveness is the leader's soft state, read outside the state's lock.
	var eligible []string
	for i := range cands {
		c := &cands[i]
		lv, ok := s.cfg.Hub.Liveness(c.id)
		switch {
		case !ok || !lv.Connected:
			c.refusal = "offline"
		case lv.LocallyHalted:
			c.refusal = "locally halted"
		case c.refusal == "":
			eligible = append(eligible, c.id)
		}
	}
	n := len(eligible)
	switch {
	case g.GetCount() > 0:
		n = min(n, int(g.GetCount()))
	case g.GetPercent() > 0:
		// p·e/100, rounded up; the epsilon keeps an exact product (10 % of
		// 30) from rounding up past it through float error.
		n = min(n, int(math.Ceil(g.GetPercent()*float64(len(eligible))/100-1e-9)))
	}
	g.Registered, g.Matched, g.Eligible = uint32(registered), uint32(len(cands)), uint32(len(eligible))
	if err := s.checkCap(g, n, registered); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(g.GetSeed(), g.GetSeed()))
	r.Shuffle(len(eligible), func(i, j int) { eligible[i], eligible[j] = eligible[j], eligible[i] })
	chosen := make(map[string]bool, n)
	for _, id := range eligible[:n] {
		chosen[id] = true
	}
	g.Chosen = uint32(n)
	g.Members = make([]*turbulencev1.GroupMember, 0, n)
	counts := map[string]uint32{}
	var refused []*turbulencev1.GroupMember
	for _, c := range cands {
		switch {
		case chosen[c.id]:
			g.Members = append(g.Members, &turbulencev1.GroupMember{AgentId: c.id})
		case c.refusal != "":
			counts[c.refusal]++
			if len(refused) < limits.MaxGroupRefusedListed {
				refused = append(refused, &turbulencev1.GroupMember{AgentId: c.id, Refusal: c.refusal})
			}
		}
	}
	g.Members = append(g.Members, refused...)
	g.Refusals = refusalCounts(counts)
	if n < int(g.GetMin()) {
		return errorf(ErrGroupTooSmall, "min: %d agents required, %d would be chosen (%d matched, %d eligible%s): nothing was applied",
			g.GetMin(), n, len(cands), len(eligible), refusalText(g.GetRefusals()))
	}
	return nil
}

// checkCap refuses a choice of n agents above the controller's caps,
// naming the request field that asked for it. The caps come from the
// controller's configuration; no request can raise them.
func (s *Server) checkCap(g *turbulencev1.FaultGroup, n, registered int) error {
	capN := min(s.cfg.MaxGroupAgents, groupPercentCap(s.cfg.MaxGroupPercent, registered))
	if n <= capN {
		return nil
	}
	field := "selector"
	switch {
	case g.GetCount() > 0:
		field = "count"
	case g.GetPercent() > 0:
		field = "percent"
	case len(g.GetAgentIds()) > 0:
		field = "agent_ids"
	}
	return invalidField(field, fmt.Sprintf("the call would choose %d agents, above the controller's cap of %d (%g %% of %d registered agents, at most %d: --max-group-percent, --max-group-agents); nothing was applied",
		n, capN, s.cfg.MaxGroupPercent, registered, s.cfg.MaxGroupAgents))
}

// groupPercentCap is the most agents percent of a registered fleet allows
// one group call. It is never below one agent: a single apply may always
// hurt one agent, and a group of one is no wider than that — without this
// floor a fleet of one (a dev controller and its agent) or of a few could
// run no group and no experiment at all.
func groupPercentCap(percent float64, registered int) int {
	return max(1, int(math.Floor(percent/100*float64(registered))))
}

// refusalCounts orders counts by frequency, then reason, keeping at most
// limits.MaxRefusalKinds reasons (the rest are summed as "other").
func refusalCounts(counts map[string]uint32) []*turbulencev1.RefusalCount {
	out := make([]*turbulencev1.RefusalCount, 0, len(counts))
	for r, n := range counts {
		out = append(out, &turbulencev1.RefusalCount{Reason: r, Agents: n})
	}
	sortRefusals(out)
	if len(out) > limits.MaxRefusalKinds {
		other := &turbulencev1.RefusalCount{Reason: "other"}
		for _, rc := range out[limits.MaxRefusalKinds-1:] {
			other.Agents += rc.GetAgents()
		}
		out = append(out[:limits.MaxRefusalKinds-1], other)
	}
	return out
}

func refusalText(rs []*turbulencev1.RefusalCount) string {
	txt := ""
	for _, r := range rs {
		txt += fmt.Sprintf("; %d %s", r.GetAgents(), r.GetReason())
	}
	return txt
}

// overlayGroup puts the agents' latest soft status on the live members.
func (s *Server) overlayGroup(g *turbulencev1.FaultGroup) *turbulencev1.FaultGroup {
	for _, m := range g.GetMembers() {
		if !state.Chosen(m) || state.Ended(m.GetState()) {
			continue
		}
		if st, ok := s.cfg.Hub.HeldStatus(m.GetAgentId(), m.GetFaultId()); ok {
			m.MeasuredCpuPercent, m.ResidentBytes, m.Degraded = st.GetMeasuredCpuPercent(), st.GetResidentBytes(), st.GetDegraded()
		}
	}
	return g
}

// GetFaultGroup returns one group with its members.
func (s *Server) GetFaultGroup(ctx context.Context, req *turbulencev1.GetFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	g, ok := s.cfg.State.FaultGroup(req.GetId())
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: fault group %q not found", req.GetId()))
	}
	return s.overlayGroup(g), nil
}

// ListFaultGroups returns a page of group summaries, oldest first.
func (s *Server) ListFaultGroups(ctx context.Context, req *turbulencev1.ListFaultGroupsRequest) (*turbulencev1.ListFaultGroupsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	n, err := PageSize("page_size", req.GetPageSize(), limits.DefaultPageGroups, limits.MaxPageGroups)
	if err != nil {
		return nil, err
	}
	after, err := parseCursorToken(tokenGroups, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	groups, more := s.cfg.State.FaultGroupsPage(after, n)
	resp := &turbulencev1.ListFaultGroupsResponse{Groups: groups}
	if more {
		last := groups[len(groups)-1]
		resp.NextPageToken = cursorToken(tokenGroups, state.FaultCursor{CreatedAt: last.GetCreatedAt().AsTime(), ID: last.GetId()})
	}
	return resp, nil
}

// RevertFaultGroup reverts every live member of a group in one raft entry
// and tells their agents.
func (s *Server) RevertFaultGroup(ctx context.Context, req *turbulencev1.RevertFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	g, err := s.revertFaultGroup(ctx, caller, req.GetRequestId(), req.GetId(), "group revert requested by "+caller.String())
	return g, toStatus(err)
}

// ApplyGroupFor applies (or, with dry_run, plans) a fault group on behalf
// of actor, a caller already authorized: the experiment runner applies
// each step through it, so that a step's group is chosen, checked,
// recorded and dispatched exactly as ApplyFaultGroup's.
func (s *Server) ApplyGroupFor(ctx context.Context, actor tlsutil.Identity, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	return s.applyFaultGroup(ctx, actor, req)
}

// RevertGroupFor reverts a group on behalf of actor, as RevertFaultGroup
// does, with reason recorded on its faults.
func (s *Server) RevertGroupFor(ctx context.Context, actor tlsutil.Identity, requestID, groupID, reason string) (*turbulencev1.FaultGroup, error) {
	return s.revertFaultGroup(ctx, actor, requestID, groupID, reason)
}

func (s *Server) revertFaultGroup(ctx context.Context, caller tlsutil.Identity, requestID, id, reason string) (*turbulencev1.FaultGroup, error) {
	g, ok := s.cfg.State.FaultGroup(id)
	if !ok {
		return nil, errorf(ErrNotFound, "id: fault group %q not found", id)
	}
	live := false
	for _, m := range g.GetMembers() {
		live = live || (state.Chosen(m) && !state.Ended(m.GetState()))
	}
	if !live {
		return s.overlayGroup(g), nil
	}
	resp, err := s.propose(ctx, &raftv1.LogEntry{
		RequestId: requestID,
		Actor:     caller.String(),
		Cmd:       &raftv1.LogEntry_RevertFaultGroup{RevertFaultGroup: &raftv1.RevertFaultGroup{GroupId: g.GetId(), Reason: limits.Truncate(reason, limits.MaxReason)}},
	})
	if err != nil {
		return nil, err
	}
	updated, ok := resp.(*turbulencev1.FaultGroup)
	if !ok {
		return nil, fmt.Errorf("revert fault group: unexpected raft response %T", resp)
	}
	for _, m := range updated.GetMembers() {
		if m.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING {
			continue
		}
		if f, ok := s.cfg.State.Fault(m.GetFaultId()); ok {
			s.cfg.Hub.DispatchRevert(f, f.GetReason())
		}
	}
	s.logger.Info("fault group revert requested", "group_id", g.GetId(), "by", caller.String())
	return s.overlayGroup(updated), nil
}

func sortRefusals(rs []*turbulencev1.RefusalCount) {
	slices.SortFunc(rs, func(a, b *turbulencev1.RefusalCount) int {
		return cmp.Or(cmp.Compare(b.GetAgents(), a.GetAgents()), cmp.Compare(a.GetReason(), b.GetReason()))
	})
}
