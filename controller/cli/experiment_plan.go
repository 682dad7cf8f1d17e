package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// maxAgentsShown bounds the agents a plan's table lists in one cell;
// -o json lists them all.
const maxAgentsShown = 8

// planJSON is what `experiment plan -o json` prints: the plan, and the
// problems the controller found (empty when it would run).
type planJSON struct {
	*experiment.Plan
	Problems []problemJSON `json:"problems"`
}

func (a *app) experimentPlanCommand() *cobra.Command {
	var seed uint64
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Show which agents an experiment would hit and when, touching nothing",
		Long: `plan validates an experiment file, then asks the controller which agents
each target would be and what each step would ask of them, with the same
dry runs a run makes (they write nothing: no fault, no group, no raft
entry, no audit record). It prints the targets, the timeline of steps
and the probes.

The choice depends on the seed: the file's, --seed, or else one picked
for this plan (a run then picks its own). The same seed and the same
fleet give the same choice.

Exit code 0: the experiment could start now; 3: the file has problems,
or the controller would refuse a target or a step (listed).`,
		Args: exactArgs("FILE"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			var sp *uint64
			if cmd.Flags().Changed("seed") {
				sp = &seed
			}
			return a.planExperiment(cmd.Context(), args[0], sp)
		}),
	}
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed of the choice of agents (default: the file's, or one picked for this plan)")
	return cmd
}

func (a *app) planExperiment(ctx context.Context, path string, seed *uint64) error {
	s, err := readExperiment(path)
	if problems := problemsOf(err); problems != nil {
		if a.json() {
			if err := writeJSONValue(a.stdout, planJSON{Problems: toJSON(problems)}); err != nil {
				return err
			}
		} else if err := printProblems(a.stdout, problems); err != nil {
			return err
		}
		return problemsError(path, problems)
	} else if err != nil {
		return err
	}
	var plan *experiment.Plan
	err = a.withClient(func(c *client) error {
		plan, err = experiment.MakePlan(ctx, s, cliFleet{c}, seed)
		return err
	})
	problems := problemsOf(err)
	if err != nil && problems == nil {
		return err
	}
	if a.json() {
		if err := writeJSONValue(a.stdout, planJSON{Plan: plan, Problems: toJSON(problems)}); err != nil {
			return err
		}
	} else {
		if err := printPlan(a.stdout, plan); err != nil {
			return err
		}
		if len(problems) > 0 {
			fmt.Fprintln(a.stdout)
			if err := printProblems(a.stdout, problems); err != nil {
				return err
			}
		}
	}
	if len(problems) > 0 {
		return problemsError(path, problems)
	}
	return nil
}

func toJSON(problems []experiment.FieldError) []problemJSON {
	out := make([]problemJSON, len(problems))
	for i, p := range problems {
		out[i] = problemJSON(p)
	}
	return out
}

// printPlan prints a plan as a header and three tables: targets, steps
// and probes.
func printPlan(w io.Writer, p *experiment.Plan) error {
	tw := table(w)
	row(tw, "Experiment:", p.Experiment+" (owner "+p.Owner+")")
	row(tw, "Hypothesis:", p.Hypothesis)
	seed := strconv.FormatUint(p.Seed, 10)
	if p.SeedPicked {
		seed += " (picked for this plan: --seed " + seed + " repeats it; a run picks its own unless the file sets one)"
	}
	row(tw, "Seed:", seed)
	row(tw, "Dry run:", "nothing was applied, recorded or audited")
	row(tw, "Timeline:", fmt.Sprintf("faults end %s after the start, then up to %s for the steady state to recover", p.FaultsEnd.D(), p.Recovery.D()))
	if b := p.ErrorBudget; b != nil {
		row(tw, "Error budget:", fmt.Sprintf("start only if %s >= %g at %s", b.Query, b.MinRemaining, b.URL))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = table(w)
	row(tw, "TARGET", "SELECTOR", "CAP", "MATCHED", "ELIGIBLE", "CHOSEN", "AGENTS", "REFUSED")
	for _, t := range p.Targets {
		sel := t.Selector
		if len(t.AgentIDs) > 0 {
			sel = strings.TrimPrefix(sel+" agents="+strings.Join(t.AgentIDs, ","), " ")
		}
		eligible, chosen, agents, refused := none, none, none, none
		if g := t.Group; g != nil {
			eligible, chosen = itoa(g.Eligible), strconv.Itoa(len(g.Chosen))
			agents, refused = agentList(g.Chosen), refusalList(g.Refused)
		}
		row(tw, t.Name, orNone(sel), capText(t), strconv.Itoa(t.Matched), eligible, chosen, agents, refused)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = table(w)
	row(tw, "STEP", "TARGET", "START", "END", "FAULT", "AGENTS", "REFUSED")
	for _, st := range p.Steps {
		start := st.Start.D().String()
		if st.After != "" {
			start += " (after " + st.After + ")"
		}
		fault := none
		if st.FaultSpec != nil {
			fault = st.Kind + " " + specSummary(st.FaultSpec)
		}
		agents, refused := none, none
		if g := st.Group; g != nil {
			agents, refused = agentList(g.Chosen), refusalList(g.Refused)
		}
		row(tw, st.Name, st.Target, start, st.End.D().String(), fault, agents, refused)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = table(w)
	row(tw, "PROBE", "KIND", "EVERY", "USED FOR", "PASSES WHEN")
	for _, pr := range p.Probes {
		var use []string
		if pr.SteadyState {
			use = append(use, "steady state")
		}
		if pr.AbortWhen {
			use = append(use, "abort")
		}
		if len(use) == 0 {
			use = append(use, "report")
		}
		row(tw, pr.Name, pr.Kind, time.Duration(pr.Interval).String(), strings.Join(use, ", "), pr.Detail)
	}
	return tw.Flush()
}

func capText(t experiment.TargetPlan) string {
	c := "all eligible"
	switch {
	case t.Count > 0:
		c = "count " + itoa(t.Count)
	case t.Percent > 0:
		c = strconv.FormatFloat(t.Percent, 'g', -1, 64) + "%"
	}
	if t.Min > 1 {
		c += ", min " + itoa(t.Min)
	}
	return c
}

func agentList(ids []string) string {
	if len(ids) == 0 {
		return none
	}
	if len(ids) > maxAgentsShown {
		return strings.Join(ids[:maxAgentsShown], ",") + fmt.Sprintf(" +%d more", len(ids)-maxAgentsShown)
	}
	return strings.Join(ids, ",")
}

// refusalList counts the refused by reason, in the order first seen.
func refusalList(rs []experiment.Refusal) string {
	if len(rs) == 0 {
		return none
	}
	var order []string
	counts := map[string]int{}
	for _, r := range rs {
		if counts[r.Reason] == 0 {
			order = append(order, r.Reason)
		}
		counts[r.Reason]++
	}
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = strconv.Itoa(counts[r]) + " " + r
	}
	return strings.Join(parts, ", ")
}
