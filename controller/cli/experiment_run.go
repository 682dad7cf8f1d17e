package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// followInterval is how often `experiment run --follow` asks for news.
// The runner records its progress once a second
// (docs/experiments-runner.md), so polling faster would show nothing new.
const followInterval = 500 * time.Millisecond

// experimentFailedError is `experiment run --follow` whose experiment
// did not end COMPLETED with a passing verdict. It exits with
// ExitExperimentFailed.
type experimentFailedError struct {
	id, state, reason string
}

func (e *experimentFailedError) Error() string {
	return fmt.Sprintf("experiment %s ended %s: %s", e.id, e.state, e.reason)
}

func (a *app) experimentRunCommand() *cobra.Command {
	var requestID string
	var follow, dryRun bool
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Start an experiment on the controller (and, with --follow, watch it to its end)",
		Long: `run validates an experiment file here, then sends it to the controller,
which validates it again, records it in raft and runs it on the leader:
error budget and steady state first (it refuses to start otherwise), then
each step's fault group on its timeline, with the abort_when probes
watched all along, then the recovery (docs/experiments-runner.md).

It prints the experiment's ID. With --follow it prints a line for every
event (step started and ended, a probe failing or passing again, the
end) and the probes' latest values as they come, until the experiment
ends; it then exits 0 only if the experiment COMPLETED with the verdict
PASSED, and 10 otherwise. Ctrl-C stops following, not the experiment:
'turbctl experiment abort ID' stops it.`,
		Args: exactArgs("FILE"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			return a.runExperiment(cmd.Context(), args[0], requestID, follow, dryRun)
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print progress until the experiment ends")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and choose the targets on the controller, start nothing (see also 'experiment plan')")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	return cmd
}

func (a *app) runExperiment(ctx context.Context, path, requestID string, follow, dryRun bool) error {
	if _, err := readExperiment(path); err != nil {
		if problems := problemsOf(err); problems != nil {
			if err := printProblems(a.stdout, problems); err != nil {
				return err
			}
			return problemsError(path, problems)
		}
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return invalidf("%v", err)
	}
	if len(data) > limits.MaxExperimentSpec {
		return invalidf("%s: %d bytes, above the controller's limit of %d bytes for an experiment file", path, len(data), limits.MaxExperimentSpec)
	}
	return a.withClient(func(c *client) error {
		req := &turbulencev1.StartExperimentRequest{RequestId: requestID, Spec: data, DryRun: dryRun}
		var x *turbulencev1.Experiment
		if err := c.mutate(ctx, requestID, func(ctx context.Context) (err error) {
			x, err = c.api.StartExperiment(ctx, req)
			return err
		}); err != nil {
			return err
		}
		if !follow || dryRun {
			return a.printExperiment(x)
		}
		if !a.json() {
			fmt.Fprintf(a.stdout, "experiment %s (%s) started, seed %d; following (Ctrl-C stops following, not the experiment)\n", x.GetId(), x.GetName(), x.GetSeed())
		}
		return a.followExperiment(ctx, c, x.GetId())
	})
}

// followExperiment prints an experiment's new events and probe values until it
// ends, then returns nil for a passed experiment and an
// experimentFailedError otherwise.
func (a *app) followExperiment(ctx context.Context, c *client, id string) error {
	seenEvents := 0
	seenSamples := map[string]int{}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		var x *turbulencev1.Experiment
		if err := c.call(ctx, func(ctx context.Context) (err error) {
			x, err = c.api.GetExperiment(ctx, &turbulencev1.GetExperimentRequest{Id: id, WithSamples: true})
			return err
		}); err != nil {
			return err
		}
		for _, ev := range x.GetEvents()[min(seenEvents, len(x.GetEvents())):] {
			if a.json() {
				if err := writeJSONLine(a.stdout, ev); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(a.stdout, "%s  %-16s %s\n", ev.GetTime().AsTime().UTC().Format("15:04:05.000"), ev.GetType(), ev.GetMessage())
		}
		seenEvents = len(x.GetEvents())
		if !a.json() {
			if line := probeLine(x, seenSamples); line != "" {
				fmt.Fprintln(a.stdout, line)
			}
		}
		if ended(x.GetState()) {
			if x.GetState() == turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED && x.GetVerdict() == turbulencev1.Verdict_VERDICT_PASSED {
				return nil
			}
			return &experimentFailedError{id: id, state: stateWord(x.GetState()), reason: x.GetReason()}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// probeLine is one line with each probe's latest value and how many of
// its new samples failed, "" when no probe has a new sample.
func probeLine(x *turbulencev1.Experiment, seen map[string]int) string {
	var parts []string
	for _, s := range x.GetSeries() {
		n := len(s.GetSamples())
		if n <= seen[s.GetProbe()] {
			continue
		}
		failed := 0
		for _, smp := range s.GetSamples()[seen[s.GetProbe()]:] {
			if !smp.GetOk() {
				failed++
			}
		}
		last := s.GetSamples()[n-1]
		word := "ok"
		if !last.GetOk() {
			word = "FAIL"
		}
		parts = append(parts, fmt.Sprintf("%s=%s %s (%d new, %d failed)", s.GetProbe(), fmtValue(last.GetValue()), word, n-seen[s.GetProbe()], failed))
		seen[s.GetProbe()] = n
	}
	if len(parts) == 0 {
		return ""
	}
	return "              probes           " + strings.Join(parts, "; ")
}

func fmtValue(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func ended(st turbulencev1.ExperimentState) bool {
	return st != turbulencev1.ExperimentState_EXPERIMENT_STATE_PENDING && st != turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
}

// stateWord is an experiment state without its enum prefix.
func stateWord(st turbulencev1.ExperimentState) string {
	return strings.TrimPrefix(st.String(), "EXPERIMENT_STATE_")
}

func verdictWord(v turbulencev1.Verdict) string {
	if v == turbulencev1.Verdict_VERDICT_UNSPECIFIED {
		return none
	}
	return strings.TrimPrefix(v.String(), "VERDICT_")
}

func (a *app) experimentListCommand() *cobra.Command {
	var pageSize uint32
	var pageToken string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List experiments, oldest first",
		Args:    exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(func(c *client) error {
				var resp *turbulencev1.ListExperimentsResponse
				if err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					resp, err = c.api.ListExperiments(ctx, &turbulencev1.ListExperimentsRequest{PageSize: pageSize, PageToken: pageToken})
					return err
				}); err != nil {
					return err
				}
				return a.printExperiments(resp)
			})
		}),
	}
	cmd.Flags().Uint32Var(&pageSize, "page-size", 0, fmt.Sprintf("experiments per page (default %d, at most %d)", limits.DefaultPageExperiments, limits.MaxPageExperiments))
	cmd.Flags().StringVar(&pageToken, "page-token", "", "the next_page_token of the previous page")
	return cmd
}

func (a *app) printExperiments(resp *turbulencev1.ListExperimentsResponse) error {
	if a.json() {
		return writeJSON(a.stdout, resp)
	}
	return experimentsTable(a.stdout, a.env.now(), resp)
}

func experimentsTable(w io.Writer, now time.Time, resp *turbulencev1.ListExperimentsResponse) error {
	tw := table(w)
	row(tw, "ID", "NAME", "STATE", "VERDICT", "STEPS", "CREATED", "BY", "REASON")
	for _, x := range resp.GetExperiments() {
		row(tw, x.GetId(), x.GetName(), stateWord(x.GetState()), verdictWord(x.GetVerdict()),
			fmt.Sprintf("%d/%d", x.GetStepsStarted(), x.GetSteps()), relative(x.GetCreatedAt(), now), x.GetCreatedBy(), x.GetReason())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t := resp.GetNextPageToken(); t != "" {
		fmt.Fprintf(w, "more: --page-token %s\n", t)
	}
	return nil
}

func (a *app) experimentShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an experiment: its state, targets, steps and timeline",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(c *client) error {
				var x *turbulencev1.Experiment
				if err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					x, err = c.api.GetExperiment(ctx, &turbulencev1.GetExperimentRequest{Id: args[0]})
					return err
				}); err != nil {
					return err
				}
				return a.printExperiment(x)
			})
		}),
	}
}

func (a *app) printExperiment(x *turbulencev1.Experiment) error {
	if a.json() {
		return writeJSON(a.stdout, x)
	}
	return experimentDetail(a.stdout, a.env.now(), x)
}

func experimentDetail(w io.Writer, now time.Time, x *turbulencev1.Experiment) error {
	tw := table(w)
	id := x.GetId()
	if id == "" {
		id = "(dry run: nothing recorded)"
	}
	row(tw, "ID:", id)
	row(tw, "Name:", x.GetName())
	row(tw, "Hypothesis:", x.GetHypothesis())
	row(tw, "State:", stateWord(x.GetState()))
	row(tw, "Verdict:", verdictWord(x.GetVerdict()))
	if x.GetReason() != "" {
		row(tw, "Reason:", x.GetReason())
	}
	if x.GetFailedProbe() != "" {
		row(tw, "Failed probe:", x.GetFailedProbe()+" = "+fmtValue(x.GetFailedValue()))
	}
	row(tw, "Seed:", strconv.FormatUint(x.GetSeed(), 10))
	row(tw, "Created:", absolute(x.GetCreatedAt(), now)+" by "+x.GetCreatedBy())
	row(tw, "Started:", absolute(x.GetStartedAt(), now))
	row(tw, "Ended:", absolute(x.GetEndedAt(), now))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nTargets:")
	tw = table(w)
	row(tw, "  TARGET", "AGENTS")
	for _, t := range x.GetTargets() {
		row(tw, "  "+t.GetName(), agentList(t.GetAgentIds()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSteps:")
	tw = table(w)
	row(tw, "  STEP", "TARGET", "KIND", "AT", "FOR", "GROUP", "STARTED", "ENDED")
	for _, s := range x.GetSteps() {
		row(tw, "  "+s.GetName(), s.GetTarget(), s.GetKind(), "+"+duration(s.GetOffset()), duration(s.GetDuration()),
			orNone(s.GetGroupId()), stamp(s.GetStartedAt()), stamp(s.GetEndedAt()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(x.GetEvents()) > 0 {
		fmt.Fprintln(w, "\nEvents:")
		tw = table(w)
		for _, ev := range x.GetEvents() {
			row(tw, "  "+stamp(ev.GetTime()), ev.GetType(), ev.GetMessage())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if n := x.GetDroppedEvents(); n > 0 {
			fmt.Fprintf(w, "  (%d later events were not kept)\n", n)
		}
	}
	return nil
}

func (a *app) experimentAbortCommand() *cobra.Command {
	var reason, requestID string
	cmd := &cobra.Command{
		Use:   "abort ID",
		Short: "Abort a running experiment: revert every fault it applied and end it ABORTED",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			return a.withClient(func(c *client) error {
				var x *turbulencev1.Experiment
				if err := c.mutate(cmd.Context(), requestID, func(ctx context.Context) (err error) {
					x, err = c.api.AbortExperiment(ctx, &turbulencev1.AbortExperimentRequest{RequestId: requestID, Id: args[0], Reason: reason})
					return err
				}); err != nil {
					return err
				}
				return a.printExperiment(x)
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the experiment and in the audit log)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	return cmd
}
