package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/selector"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// groupFlags are the flags of `fault apply KIND` that turn it into a group
// call (docs/groups.md): --select or --agents picks the candidates, the
// others bound and seed the choice.
type groupFlags struct {
	selector string
	agents   []string
	count    uint32
	percent  float64
	seed     uint64
	min      uint32
	dryRun   bool
	// percentFlags are the names of the percentage flag on this command.
	percentFlags []string
}

// bindGroupFlags registers the group flags on a `fault apply KIND` command.
func bindGroupFlags(cmd *cobra.Command) *groupFlags {
	g := &groupFlags{percentFlags: []string{"fleet-percent"}}
	f := cmd.Flags()
	f.StringVar(&g.selector, "select", "", "apply to a slice of the agents whose labels match this selector (role=web,zone in (a,b)); see docs/groups.md")
	f.StringSliceVar(&g.agents, "agents", nil, "apply to a slice of these agents (comma-separated IDs; with --select, those of them that match)")
	f.Uint32Var(&g.count, "count", 0, "group: choose at most this many of the eligible agents")
	f.Float64Var(&g.percent, "fleet-percent", 0, "group: choose this percentage of the eligible agents, rounded up, (0, 100]")
	// --percent says the same where the kind has no --percent of its own
	// (memory's is the size of the fault).
	if f.Lookup("percent") == nil {
		f.Float64Var(&g.percent, "percent", 0, "group: choose this percentage of the eligible agents, rounded up, (0, 100] (same as --fleet-percent)")
		g.percentFlags = append(g.percentFlags, "percent")
	}
	f.Uint64Var(&g.seed, "seed", 0, "group: seed of the random choice; the same seed over the same fleet makes the same choice (default: the controller picks one and prints it)")
	f.Uint32Var(&g.min, "min", 0, "group: fail, applying nothing, if fewer agents would be chosen (default 1)")
	f.BoolVar(&g.dryRun, "dry-run", false, "group: print which agents would be hit and why the others would not, and apply nothing")
	return g
}

// active reports whether the command was asked for a group.
func (g *groupFlags) active(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("select") || cmd.Flags().Changed("agents")
}

func (g *groupFlags) percentChanged(cmd *cobra.Command) bool {
	for _, name := range g.percentFlags {
		if cmd.Flags().Changed(name) {
			return true
		}
	}
	return false
}

// check refuses group flags that make no sense together, naming them, and
// group-only flags given without --select or --agents.
func (g *groupFlags) check(cmd *cobra.Command, agentID string) error {
	fl := cmd.Flags()
	if !g.active(cmd) {
		for _, name := range append([]string{"count", "seed", "min", "dry-run"}, g.percentFlags...) {
			if fl.Changed(name) {
				return usagef("--%s needs --select or --agents (a group call)", name)
			}
		}
		return nil
	}
	switch {
	case agentID != "":
		return usagef("--agent applies to one agent; --select and --agents to a group: give one or the other")
	case fl.Changed("percent") && fl.Changed("fleet-percent") && len(g.percentFlags) > 1:
		return usagef("--percent and --fleet-percent are the same flag: give one")
	case fl.Changed("count") && g.percentChanged(cmd):
		return usagef("--count and --percent exclude each other")
	case fl.Changed("count") && g.count == 0:
		return invalidf("--count must be at least 1, got 0")
	case g.percentChanged(cmd) && (math.IsNaN(g.percent) || g.percent <= 0 || g.percent > 100):
		return invalidf("--percent must be in (0, 100], got %v", g.percent)
	case fl.Changed("count") && g.min > g.count:
		return invalidf("--min %d is above --count %d: the call could never succeed", g.min, g.count)
	case len(g.agents) > limits.MaxSelectIDs:
		return invalidf("--agents takes at most %d IDs, got %d", limits.MaxSelectIDs, len(g.agents))
	}
	if _, err := selector.Parse(g.selector); err != nil {
		return invalidf("--select: %v", err)
	}
	return nil
}

func (g *groupFlags) request(cmd *cobra.Command, requestID string, spec *turbulencev1.FaultSpec) *turbulencev1.ApplyFaultGroupRequest {
	req := &turbulencev1.ApplyFaultGroupRequest{
		RequestId: requestID, Spec: spec, Selector: g.selector, AgentIds: g.agents,
		Count: g.count, Percent: g.percent, Min: g.min, DryRun: g.dryRun,
	}
	if cmd.Flags().Changed("seed") {
		req.Seed = &g.seed
	}
	return req
}

// applyGroup sends a group call and prints the group (or the plan, for a
// dry run). It does not wait for the agents' verdicts: `fault group show`
// reads them.
func (a *app) applyGroup(cmd *cobra.Command, req *turbulencev1.ApplyFaultGroupRequest) error {
	return a.withClient(func(c *client) error {
		var g *turbulencev1.FaultGroup
		err := c.mutate(cmd.Context(), req.GetRequestId(), func(ctx context.Context) (err error) {
			g, err = c.api.ApplyFaultGroup(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		return a.printGroup(g)
	})
}

func (a *app) faultGroupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "group",
		Aliases: []string{"groups"},
		Short:   "List, inspect and revert fault groups (faults applied to a slice of the fleet in one call)",
		Args:    noSubcommand,
		RunE:    missingSubcommand,
	}
	var limit int
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List fault groups, oldest first, with their members' states",
		Args:    exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return invalidf("--limit must be 0 (no limit) or more, got %d", limit)
			}
			return a.withClient(func(c *client) error {
				all := &turbulencev1.ListFaultGroupsResponse{}
				err := c.pages(cmd.Context(), limit, limits.MaxPageGroups, func(ctx context.Context, token string, size uint32) (int, string, error) {
					resp, err := c.api.ListFaultGroups(ctx, &turbulencev1.ListFaultGroupsRequest{PageToken: token, PageSize: size})
					all.Groups = append(all.Groups, resp.GetGroups()...)
					return len(resp.GetGroups()), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				return a.printGroups(all)
			})
		}),
	}
	ls.Flags().IntVar(&limit, "limit", 0, "stop after this many groups (0 = all)")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one group: what was asked, what each agent achieved or why it was left out",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(c *client) error {
				var g *turbulencev1.FaultGroup
				err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					g, err = c.api.GetFaultGroup(ctx, &turbulencev1.GetFaultGroupRequest{Id: args[0]})
					return err
				})
				if err != nil {
					return err
				}
				return a.printGroup(g)
			})
		}),
	}
	var requestID string
	revert := &cobra.Command{
		Use:   "revert ID",
		Short: "Take back every live fault of a group, in one call",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			req := &turbulencev1.RevertFaultGroupRequest{RequestId: requestID, Id: args[0]}
			return a.withClient(func(c *client) error {
				var g *turbulencev1.FaultGroup
				err := c.mutate(cmd.Context(), req.GetRequestId(), func(ctx context.Context) (err error) {
					g, err = c.api.RevertFaultGroup(ctx, req)
					return err
				})
				if err != nil {
					return err
				}
				return a.printGroup(g)
			})
		}),
	}
	revert.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	cmd.AddCommand(a.consistentFlag(ls), a.consistentFlag(show), revert)
	return cmd
}

func (a *app) printGroup(g *turbulencev1.FaultGroup) error {
	if a.json() {
		return writeJSON(a.stdout, g)
	}
	return groupDetail(a.stdout, a.env.now(), g)
}

func (a *app) printGroups(resp *turbulencev1.ListFaultGroupsResponse) error {
	if a.json() {
		return writeJSONList(a.stdout, resp, len(resp.GetGroups()))
	}
	tw := table(a.stdout)
	row(tw, "ID", "KIND", "ASKED", "SELECTOR", "CHOSEN", "ELIGIBLE", "MATCHED", "LIVE", "FAILED", "REVERTED", "SEED", "CREATED")
	now := a.env.now()
	for _, g := range resp.GetGroups() {
		row(tw, g.GetId(), orNone(faultspec.Kind(g.GetSpec())), specSummary(g.GetSpec()), orNone(g.GetSelector()),
			itoa(g.GetChosen()), itoa(g.GetEligible()), itoa(g.GetMatched()),
			itoa(g.GetLive()), itoa(g.GetFailed()), itoa(g.GetReverted()), strconv.FormatUint(g.GetSeed(), 10), relative(g.GetCreatedAt(), now))
	}
	return tw.Flush()
}

// groupDetail prints a group: the request, the choice and its aggregate,
// then one row per member. A dry run's rows say what each agent would be
// asked, or why it would be left out.
func groupDetail(w io.Writer, now time.Time, g *turbulencev1.FaultGroup) error {
	tw := table(w)
	if g.GetDryRun() {
		row(tw, "Dry run:", "nothing was applied; the same request with --seed "+strconv.FormatUint(g.GetSeed(), 10)+" makes this choice while the fleet stays as it is")
	} else {
		row(tw, "Group:", g.GetId())
	}
	row(tw, "Asked:", orNone(faultspec.Kind(g.GetSpec()))+" "+specSummary(g.GetSpec()))
	row(tw, "Selector:", orNone(g.GetSelector()))
	if len(g.GetAgentIds()) > 0 {
		row(tw, "Agents:", strings.Join(g.GetAgentIds(), ","))
	}
	row(tw, "Choice:", choice(g))
	row(tw, "Seed:", strconv.FormatUint(g.GetSeed(), 10))
	row(tw, "Agents:", fmt.Sprintf("%d registered, %d matched, %d eligible, %d chosen", g.GetRegistered(), g.GetMatched(), g.GetEligible(), g.GetChosen()))
	row(tw, "Refused:", refusals(g))
	if !g.GetDryRun() {
		row(tw, "Outcome:", aggregate(g))
		row(tw, "Created:", absolute(g.GetCreatedAt(), now))
		row(tw, "Created by:", orNone(g.GetCreatedBy()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	tw = table(w)
	if g.GetDryRun() {
		row(tw, "AGENT", "PLAN", "DETAIL")
		for _, m := range g.GetMembers() {
			if m.GetRefusal() == "" {
				row(tw, m.GetAgentId(), "apply", orNone(faultspec.Kind(g.GetSpec()))+" "+specSummary(g.GetSpec()))
			} else {
				row(tw, m.GetAgentId(), "refused", m.GetRefusal())
			}
		}
		return tw.Flush()
	}
	row(tw, "AGENT", "FAULT", "STATE", "MEASURED", "REASON")
	for _, m := range g.GetMembers() {
		if m.GetRefusal() != "" {
			row(tw, m.GetAgentId(), none, "NOT CHOSEN", none, "refused: "+m.GetRefusal())
			continue
		}
		row(tw, m.GetAgentId(), m.GetFaultId(), stateName(m.GetState()), memberMeasured(m), orNone(m.GetReason()))
	}
	return tw.Flush()
}

// choice says how many agents the request asked for.
func choice(g *turbulencev1.FaultGroup) string {
	var c string
	switch {
	case g.GetCount() > 0:
		c = fmt.Sprintf("count %d", g.GetCount())
	case g.GetPercent() > 0:
		c = "percent " + strconv.FormatFloat(g.GetPercent(), 'f', -1, 64) + "% (rounded up)"
	default:
		c = "every eligible agent"
	}
	return fmt.Sprintf("%s, min %d", c, max(g.GetMin(), 1))
}

func refusals(g *turbulencev1.FaultGroup) string {
	if len(g.GetRefusals()) == 0 {
		return none
	}
	parts := make([]string, len(g.GetRefusals()))
	for i, r := range g.GetRefusals() {
		parts[i] = fmt.Sprintf("%d %s", r.GetAgents(), r.GetReason())
	}
	return strings.Join(parts, ", ")
}

// aggregate is asked vs achieved over the chosen members: "cpu load=50%:
// 48 agents (46 ACTIVE, 2 FAILED), achieved 49.1–50.4%, 2 refused at
// selection".
func aggregate(g *turbulencev1.FaultGroup) string {
	var (
		states     = map[turbulencev1.FaultState]int{}
		order      []turbulencev1.FaultState
		lo, hi     float64
		rlo, rhi   uint64
		nCPU, nRSS int
	)
	for _, m := range g.GetMembers() {
		if m.GetRefusal() != "" {
			continue
		}
		if states[m.GetState()] == 0 {
			order = append(order, m.GetState())
		}
		states[m.GetState()]++
		if p := m.GetMeasuredCpuPercent(); p > 0 {
			if nCPU == 0 || p < lo {
				lo = p
			}
			hi = max(hi, p)
			nCPU++
		}
		if b := m.GetResidentBytes(); b > 0 {
			if nRSS == 0 || b < rlo {
				rlo = b
			}
			rhi = max(rhi, b)
			nRSS++
		}
	}
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", states[st], stateName(st))
	}
	out := fmt.Sprintf("%s %s: %d agents (%s)", orNone(faultspec.Kind(g.GetSpec())), asked(g.GetSpec()), g.GetChosen(), strings.Join(parts, ", "))
	switch {
	case nCPU > 0:
		out += fmt.Sprintf(", achieved %s–%s on %d", strconv.FormatFloat(lo, 'f', 1, 64), percent(hi), nCPU)
	case nRSS > 0:
		out += fmt.Sprintf(", achieved %s–%s on %d", bytesIEC(rlo), bytesIEC(rhi), nRSS)
	}
	var refused uint32
	for _, r := range g.GetRefusals() {
		refused += r.GetAgents()
	}
	return out + fmt.Sprintf(", %d refused at selection", refused)
}

// asked is the spec's target in a few words, without the duration.
func asked(spec *turbulencev1.FaultSpec) string {
	return strings.TrimSuffix(specSummary(spec), " for "+duration(spec.GetDuration()))
}

func memberMeasured(m *turbulencev1.GroupMember) string {
	switch {
	case m.GetMeasuredCpuPercent() != 0:
		return "cpu " + percent(m.GetMeasuredCpuPercent())
	case m.GetResidentBytes() != 0:
		return "rss " + bytesIEC(m.GetResidentBytes())
	}
	return none
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
