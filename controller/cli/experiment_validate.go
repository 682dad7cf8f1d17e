package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/experiment/probe"
)

// checkQuery asks a Prometheus server whether a query parses; tests
// replace it.
var checkQuery experiment.QueryChecker = probe.CheckQuery

// validation is what `experiment validate -o json` prints.
type validation struct {
	File       string `json:"file"`
	Experiment string `json:"experiment,omitempty"`
	Valid      bool   `json:"valid"`
	// Checked says what was asked: "file" always; with --server also
	// "controller" and "prometheus" (when the file has queries).
	Checked  []string         `json:"checked"`
	Problems []problemJSON    `json:"problems"`
	Summary  *validateSummary `json:"summary,omitempty"`
}

type problemJSON struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type validateSummary struct {
	Targets   int    `json:"targets"`
	Steps     int    `json:"steps"`
	Probes    int    `json:"probes"`
	FaultsEnd string `json:"faults_end"`
	Recovery  string `json:"recovery"`
}

func (a *app) experimentValidateCommand() *cobra.Command {
	var server bool
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check an experiment file; with --server, also against the controller and Prometheus",
		Long: `validate reads an experiment file (docs/experiments.md) and lists every
problem, each with its field and the limit it breaks. Nothing is run.

With --server it also asks the controller whether each target matches
agents that can take its faults within the controller's caps (dry runs
that write nothing), and each Prometheus server whether its queries parse.

Exit code 0: valid; 3: the file has problems (listed).`,
		Args: exactArgs("FILE"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.validateExperiment(cmd.Context(), args[0], server)
		}),
	}
	cmd.Flags().BoolVar(&server, "server", false, "also ask the controller (dry runs) and the Prometheus servers the file names")
	return cmd
}

func (a *app) validateExperiment(ctx context.Context, path string, server bool) error {
	v := validation{File: path, Checked: []string{"file"}}
	s, err := readExperiment(path)
	problems := problemsOf(err)
	if err != nil && problems == nil {
		return err
	}
	if s != nil {
		v.Experiment = s.Name
	}
	if len(problems) == 0 && server {
		v.Checked = append(v.Checked, "controller")
		err := a.withClient(func(c *client) error {
			_, err := experiment.MakePlan(ctx, s, cliFleet{c}, nil)
			return err
		})
		if problems = problemsOf(err); err != nil && problems == nil {
			return err
		}
		if hasQueries(s) {
			v.Checked = append(v.Checked, "prometheus")
			problems = append(problems, problemsOf(s.CheckQueries(ctx, checkQuery))...)
		}
	}
	v.Valid = len(problems) == 0
	v.Problems = []problemJSON{}
	for _, p := range problems {
		v.Problems = append(v.Problems, problemJSON(p))
	}
	if v.Valid {
		v.Summary = &validateSummary{Targets: len(s.Targets), Steps: len(s.Steps), Probes: len(s.Probes),
			FaultsEnd: s.End().String(), Recovery: s.Recovery.D().String()}
	}
	if a.json() {
		if err := writeJSONValue(a.stdout, v); err != nil {
			return err
		}
	} else if err := printValidation(a, v, problems); err != nil {
		return err
	}
	if !v.Valid {
		return problemsError(path, problems)
	}
	return nil
}

func printValidation(a *app, v validation, problems []experiment.FieldError) error {
	if !v.Valid {
		return printProblems(a.stdout, problems)
	}
	tw := table(a.stdout)
	row(tw, "File:", v.File)
	row(tw, "Experiment:", v.Experiment)
	row(tw, "Valid:", "yes, checked: "+strings.Join(v.Checked, ", "))
	row(tw, "Contents:", strconv.Itoa(v.Summary.Targets)+" targets, "+strconv.Itoa(v.Summary.Steps)+" steps, "+strconv.Itoa(v.Summary.Probes)+" probes")
	row(tw, "Timeline:", fmt.Sprintf("faults end %s after the start; recovery %s", v.Summary.FaultsEnd, v.Summary.Recovery))
	return tw.Flush()
}

func hasQueries(s *experiment.Spec) bool {
	for _, p := range s.Probes {
		if p.Prometheus != nil {
			return true
		}
	}
	return s.ErrorBudget != nil
}
