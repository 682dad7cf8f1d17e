package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) faultCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "fault",
		Aliases: []string{"faults"},
		Short:   "Apply, list, inspect and revert faults",
		Args:    noSubcommand,
		RunE:    missingSubcommand,
	}
	cmd.AddCommand(a.faultApplyCommand(), a.faultListCommand(), a.faultShowCommand(), a.faultRevertCommand(), a.faultGroupCommand())
	return cmd
}

func (a *app) faultListCommand() *cobra.Command {
	var (
		req                     turbulencev1.ListFaultsRequest
		stateFlag, since, until string
		limit                   int
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List faults",
		Long: `List faults, oldest first, following the controller's pages until the
end or --limit. --since and --until take an RFC 3339 time or a duration
back from now (90m, 24h) and select by creation time.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return invalidf("--limit must be 0 (no limit) or more, got %d", limit)
			}
			if stateFlag != "" {
				v, ok := turbulencev1.FaultState_value["FAULT_STATE_"+strings.ToUpper(stateFlag)]
				if !ok || v == 0 {
					return invalidf("--state %q: want one of pending, active, reverting, unconfirmed, reverted, failed", stateFlag)
				}
				req.State = turbulencev1.FaultState(v)
			}
			if req.Kind != "" && !slices.Contains(faultspec.AllKinds, req.Kind) {
				return invalidf("--kind %q: want one of %s", req.Kind, strings.Join(faultspec.AllKinds, ", "))
			}
			now := a.env.now()
			var err error
			if req.Since, err = pointInTime("--since", since, now); err != nil {
				return err
			}
			if req.Until, err = pointInTime("--until", until, now); err != nil {
				return err
			}
			return a.withClient(func(c *client) error {
				list := func() (*turbulencev1.ListFaultsResponse, error) {
					all := &turbulencev1.ListFaultsResponse{}
					err := c.pages(cmd.Context(), limit, limits.MaxPageFaults, func(ctx context.Context, token string, size uint32) (int, string, error) {
						page := proto.CloneOf(&req)
						page.PageToken, page.PageSize = token, size
						resp, err := c.api.ListFaults(ctx, page)
						all.Faults = append(all.Faults, resp.GetFaults()...)
						return len(resp.GetFaults()), resp.GetNextPageToken(), err
					})
					return all, err
				}
				all, err := list()
				if err != nil {
					return err
				}
				if len(all.GetFaults()) == 0 && !a.consistent {
					all = a.confirmEmpty(all, list)
				}
				return a.printFaults(all)
			})
		}),
	}
	cmd.Flags().StringVar(&req.AgentId, "agent", "", "only faults on this agent")
	cmd.Flags().BoolVar(&req.ActiveOnly, "active", false, "only faults not known to have ended: pending, active, reverting or unconfirmed")
	cmd.Flags().StringVar(&stateFlag, "state", "", "only faults in this state (pending, active, reverting, unconfirmed, reverted, failed)")
	cmd.Flags().StringVar(&req.Kind, "kind", "", "only faults of this kind ("+strings.Join(faultspec.AllKinds, ", ")+")")
	cmd.Flags().StringVar(&since, "since", "", "only faults created at or after this time (RFC 3339, or a duration ago: 24h)")
	cmd.Flags().StringVar(&until, "until", "", "only faults created before this time (RFC 3339, or a duration ago)")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many faults (0 = all)")
	return a.consistentFlag(cmd)
}

func (a *app) faultShowCommand() *cobra.Command {
	return a.consistentFlag(&cobra.Command{
		Use:   "show ID",
		Short: "Show one fault: what was asked and what the agent achieved",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(c *client) error {
				var fault *turbulencev1.Fault
				err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					fault, err = c.api.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: args[0]})
					return err
				})
				if err != nil {
					return err
				}
				return a.printFault(fault)
			})
		}),
	})
}

func (a *app) faultRevertCommand() *cobra.Command {
	var requestID string
	cmd := &cobra.Command{
		Use:   "revert ID",
		Short: "Take a fault back before its deadline",
		Long: `Ask the controller to take a fault back before its deadline. The fault
moves to REVERTING and then REVERTED once the agent confirms; reverting a
fault that has already ended returns it unchanged.`,
		Args: exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			req := &turbulencev1.RevertFaultRequest{RequestId: requestID, Id: args[0]}
			return a.withClient(func(c *client) error {
				var fault *turbulencev1.Fault
				err := c.mutate(cmd.Context(), req.GetRequestId(), func(ctx context.Context) (err error) {
					fault, err = c.api.RevertFault(ctx, req)
					return err
				})
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(a.stdout, fault)
				}
				_, err = fmt.Fprintf(a.stdout, "fault %s: %s\n", cell(fault.GetId()), stateName(fault.GetState()))
				return err
			})
		}),
	}
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	return cmd
}

func (a *app) printFaults(resp *turbulencev1.ListFaultsResponse) error {
	if a.json() {
		return writeJSONList(a.stdout, resp, len(resp.GetFaults()))
	}
	return faultsTable(a.stdout, a.env.now(), resp.GetFaults())
}

func (a *app) printFault(f *turbulencev1.Fault) error {
	if a.json() {
		return writeJSON(a.stdout, f)
	}
	return faultDetail(a.stdout, a.env.now(), f)
}

func faultsTable(w io.Writer, now time.Time, faults []*turbulencev1.Fault) error {
	tw := table(w)
	// The GROUP column shows only when some fault is a group member.
	grouped := slices.ContainsFunc(faults, func(f *turbulencev1.Fault) bool { return f.GetGroupId() != "" })
	head := []string{"ID", "AGENT", "KIND", "STATE", "ASKED", "MEASURED", "CREATED", "ENDS", "REASON"}
	if grouped {
		head = append(head, "GROUP")
	}
	row(tw, head...)
	for _, f := range faults {
		cells := []string{f.GetId(), f.GetAgentId(), orNone(faultspec.Kind(f.GetSpec())), stateName(f.GetState()),
			specSummary(f.GetSpec()), measured(f), relative(f.GetCreatedAt(), now), ends(f, now),
			orNone(f.GetReason())}
		if grouped {
			cells = append(cells, orNone(f.GetGroupId()))
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// faultDetail prints a fault as asked (the spec) beside what the agent
// achieved (its last reported status).
func faultDetail(w io.Writer, now time.Time, f *turbulencev1.Fault) error {
	st := f.GetStatus()
	tw := table(w)
	row(tw, "ID:", f.GetId())
	row(tw, "Agent:", f.GetAgentId())
	if f.GetGroupId() != "" {
		row(tw, "Group:", f.GetGroupId())
	}
	row(tw, "Kind:", orNone(faultspec.Kind(f.GetSpec())))
	row(tw, "State:", stateLine(f))
	row(tw, "Created:", absolute(f.GetCreatedAt(), now))
	row(tw, "Created by:", orNone(f.GetCreatedBy()))
	row(tw, "Deadline:", absolute(f.GetDeadline(), now))
	row(tw, "Time left:", timeLeft(f, now))
	row(tw, "Ended:", absolute(f.GetEndedAt(), now))
	if unconfirmed(f.GetState()) {
		row(tw, "Unknown since:", absolute(f.GetUnconfirmedSince(), now))
	}
	row(tw, "Reason:", orNone(f.GetReason()))
	row(tw, "")
	row(tw, "Asked:")
	row(tw, "  Duration:", duration(f.GetSpec().GetDuration()))
	for _, kv := range specFields(f.GetSpec()) {
		row(tw, "  "+kv[0]+":", kv[1])
	}
	row(tw, "")
	if live(f.GetState()) {
		row(tw, "Achieved:")
	} else {
		// Ended or unknown: what the agent last measured, kept.
		row(tw, "Achieved (last report from the agent):")
	}
	if st == nil {
		row(tw, "  (no report from the agent)")
		return tw.Flush()
	}
	row(tw, "  Agent state:", agentState(f.GetState(), st.GetState()))
	row(tw, "  Applied:", absolute(st.GetAppliedAt(), now))
	if live(f.GetState()) {
		row(tw, "  Agent deadline:", absolute(st.GetDeadline(), now))
	} else {
		// A deadline still ahead would read as a fault still running.
		row(tw, "  Ended on host:", absolute(st.GetEndedAt(), now))
	}
	if _, ok := f.GetSpec().GetKind().(*turbulencev1.FaultSpec_Cpu); ok || st.GetMeasuredCpuPercent() != 0 {
		row(tw, "  Measured CPU:", percent(st.GetMeasuredCpuPercent()))
	}
	if _, ok := f.GetSpec().GetKind().(*turbulencev1.FaultSpec_Memory); ok || st.GetResidentBytes() != 0 {
		row(tw, "  Resident memory:", resident(f.GetSpec().GetMemory(), st.GetResidentBytes()))
	}
	diskRows(tw, f.GetSpec(), st.GetDisk())
	networkRows(tw, f.GetSpec(), st)
	row(tw, "  Worker PID:", pid(st.GetWorkerPid()))
	row(tw, "  Degraded:", degraded(f.GetSpec(), st))
	row(tw, "  Agent reason:", orNone(st.GetReason()))
	return tw.Flush()
}

// stateLine is the fault's state for `fault show`, spelled out when it
// is UNCONFIRMED, which is easy to misread as a kind of success.
func stateLine(f *turbulencev1.Fault) string {
	if unconfirmed(f.GetState()) {
		return stateName(f.GetState()) + " (outcome unknown: the agent has not reported how the fault ended)"
	}
	return stateName(f.GetState())
}

// agentState is the state the agent last reported. On a fault that is no
// longer live, a live report (ACTIVE) is old news: say so, rather than
// print ACTIVE under a fault that has ended or whose fate is unknown.
func agentState(fault, agent turbulencev1.FaultState) string {
	if !live(fault) && live(agent) {
		return stateName(agent) + " (its last report; none since)"
	}
	return stateName(agent)
}

// unconfirmed reports whether the controller does not know what became of
// a fault (invariant 8, docs/protocol.md step 6).
func unconfirmed(s turbulencev1.FaultState) bool {
	return s == turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED
}

// stateName is the state without its enum prefix: "ACTIVE".
func stateName(s turbulencev1.FaultState) string {
	return strings.TrimPrefix(s.String(), "FAULT_STATE_")
}

// live reports whether a fault is known to be holding the host or on its
// way there or back. UNCONFIRMED is not: nobody knows.
func live(s turbulencev1.FaultState) bool {
	switch s {
	case turbulencev1.FaultState_FAULT_STATE_PENDING, turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		turbulencev1.FaultState_FAULT_STATE_REVERTING:
		return true
	}
	return false
}

// ends says when a fault ends ("in 8s"), ended ("ended 12s ago"), or
// since when its end is unknown ("unknown since 5s ago").
func ends(f *turbulencev1.Fault, now time.Time) string {
	if unconfirmed(f.GetState()) {
		return "unknown since " + relative(f.GetUnconfirmedSince(), now)
	}
	if !live(f.GetState()) {
		if f.GetEndedAt() == nil {
			return none
		}
		return "ended " + relative(f.GetEndedAt(), now)
	}
	return relative(f.GetDeadline(), now)
}

func timeLeft(f *turbulencev1.Fault, now time.Time) string {
	if !live(f.GetState()) || f.GetDeadline() == nil {
		return none
	}
	left := f.GetDeadline().AsTime().Sub(now)
	if left <= 0 {
		return "0s (deadline passed " + human(left) + " ago)"
	}
	return human(left)
}

func measured(f *turbulencev1.Fault) string {
	st := f.GetStatus()
	switch {
	case st.GetMeasuredCpuPercent() != 0:
		return "cpu " + percent(st.GetMeasuredCpuPercent())
	case st.GetResidentBytes() != 0:
		return "rss " + bytesIEC(st.GetResidentBytes())
	case diskMeasured(st.GetDisk()) != "":
		return diskMeasured(st.GetDisk())
	}
	return none
}

func percent(p float64) string {
	if p == 0 {
		return none
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func pid(p int32) string {
	if p == 0 {
		return none
	}
	return strconv.FormatInt(int64(p), 10)
}
